import { readInt64, writeInt64 } from './int64.js';
import { IndexFile, SegmentIndex } from './index-file.js';

const ENTRY_BYTES = 12;

/**
 * Kafka's time index: (largest timestamp so far, relative offset of the last record of the batch
 * that reached it). Timestamps in entries only increase, so every record up to an entry's offset
 * has a timestamp at most the entry's.
 */
export class TimeIndex extends SegmentIndex {
  static open(path: string, baseOffset: number): TimeIndex {
    return new TimeIndex(IndexFile.open(path, ENTRY_BYTES), baseOffset);
  }

  get lastTimestamp(): number {
    if (this.file.count === 0) return -1;
    return readInt64(this.file.view, (this.file.count - 1) * ENTRY_BYTES);
  }

  maybeAppend(maxTimestamp: number, lastOffset: number): void {
    if (maxTimestamp <= this.lastTimestamp) return;
    const at = this.file.reserve();
    writeInt64(this.file.view, maxTimestamp, at);
    this.file.view.writeInt32LE(lastOffset - this.baseOffset, at + 8);
    this.file.commit();
  }

  /** An offset from which a scan for the first record with timestamp >= `timestamp` can start. */
  scanStart(timestamp: number): number {
    const view = this.file.view;
    const entry = this.file.floorEntry(timestamp - 1, (at) => readInt64(view, at));
    if (entry < 0) return this.baseOffset;
    return this.baseOffset + view.readInt32LE(entry * ENTRY_BYTES + 8) + 1;
  }

  isSane(): boolean {
    const view = this.file.view;
    let last = -Infinity;
    for (let i = 0; i < this.file.count; i++) {
      const timestamp = readInt64(view, i * ENTRY_BYTES);
      if (timestamp <= last) return false;
      last = timestamp;
    }
    return true;
  }
}
