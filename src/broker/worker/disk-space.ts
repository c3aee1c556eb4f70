import fs from 'node:fs';

/** Below this much room above the reserve, free space is read before every batch. */
const CLOSE_TO_RESERVE_BYTES = 64 * 1024 * 1024;
const CHECK_INTERVAL_MS = 100;

/**
 * The free space on the data directory's disk, against `storage.freeSpaceReserveBytes`: data
 * partitions may not write into the reserve, so that the offsets topic and metadata still can when
 * the disk fills. Free space is read (statfs) at most every 100 ms while there is plenty, and
 * before every batch once it comes close to the reserve; what this worker wrote meanwhile is
 * counted. Space freed by retention or by an operator is seen at the next read.
 */
export class DiskSpace {
  private free = Number.POSITIVE_INFINITY;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private writtenSinceCheck = 0;

  constructor(
    private readonly directory: string,
    readonly reserveBytes: number,
  ) {}

  /** Whether a batch of `bytes` may be written now; internal topics may use the reserve. */
  allows(bytes: number, internal: boolean): boolean {
    if (internal || this.reserveBytes === 0) return true;
    this.refresh();
    return this.free - this.writtenSinceCheck - bytes >= this.reserveBytes;
  }

  written(bytes: number): void {
    this.writtenSinceCheck += bytes;
  }

  /** Free bytes as last read, less what was written since. */
  get freeBytes(): number {
    return this.free - this.writtenSinceCheck;
  }

  private refresh(): void {
    const now = Date.now();
    const headroom = this.free - this.writtenSinceCheck - this.reserveBytes;
    if (headroom > CLOSE_TO_RESERVE_BYTES && now - this.checkedAt < CHECK_INTERVAL_MS) return;
    try {
      const stats = fs.statfsSync(this.directory);
      this.free = stats.bavail * stats.bsize;
    } catch {
      // Cannot tell (the directory is gone?): let the write itself find out.
      this.free = Number.POSITIVE_INFINITY;
    }
    this.checkedAt = now;
    this.writtenSinceCheck = 0;
  }
}
