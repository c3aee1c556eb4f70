import { IndexFile, SegmentIndex } from './index-file.js';

const ENTRY_BYTES = 8;

/** Kafka's sparse offset index: (offset relative to the segment base, byte position) pairs. */
export class OffsetIndex extends SegmentIndex {
  static open(path: string, baseOffset: number): OffsetIndex {
    return new OffsetIndex(IndexFile.open(path, ENTRY_BYTES), baseOffset);
  }

  get entryCount(): number {
    return this.file.count;
  }

  append(offset: number, position: number): void {
    const at = this.file.reserve();
    this.file.view.writeInt32LE(offset - this.baseOffset, at);
    this.file.view.writeInt32LE(position, at + 4);
    this.file.commit();
  }

  /** The last indexed (offset, position) at or before `offset`, or the segment start. */
  lookup(offset: number): { offset: number; position: number } {
    const view = this.file.view;
    const entry = this.file.floorEntry(offset - this.baseOffset, (at) => view.readInt32LE(at));
    if (entry < 0) return { offset: this.baseOffset, position: 0 };
    const at = entry * ENTRY_BYTES;
    return { offset: this.baseOffset + view.readInt32LE(at), position: view.readInt32LE(at + 4) };
  }

  /** Whether entries increase strictly and stay inside a log of `logBytes`. */
  isSane(logBytes: number): boolean {
    const view = this.file.view;
    let lastOffset = -1;
    let lastPosition = -1;
    for (let i = 0; i < this.file.count; i++) {
      const offset = view.readInt32LE(i * ENTRY_BYTES);
      const position = view.readInt32LE(i * ENTRY_BYTES + 4);
      if (offset <= lastOffset || position <= lastPosition || position >= logBytes) return false;
      lastOffset = offset;
      lastPosition = position;
    }
    return true;
  }

  /** Drops every entry at or past `position` in the log. */
  truncateToPosition(position: number): void {
    const view = this.file.view;
    const keep = this.file.floorEntry(position - 1, (at) => view.readInt32LE(at + 4)) + 1;
    if (keep < this.file.count) this.file.truncate(keep);
  }
}
