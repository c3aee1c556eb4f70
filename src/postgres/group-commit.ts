import type { BatchTable, PendingBatch } from './batch-table.js';

interface Waiting {
  batches: PendingBatch[];
  data: Buffer[];
  bytes: number;
  resolve: (offsets: number[]) => void;
  reject: (error: unknown) => void;
}

/**
 * One append statement in flight per node: the turns that come while it runs wait, then go
 * together as the next statement (group commit). That keeps each partition's batches in the
 * order the front sent them (two statements on two connections would race for the partition's
 * row lock), and makes one transaction carry as many batches as arrived meanwhile.
 */
export class GroupCommit {
  private readonly queue: Waiting[] = [];
  private running = false;

  constructor(private readonly table: BatchTable) {}

  /** Appends one turn's batches (`position` within `data`, end to end); resolves to their base offsets (-1: no such partition). */
  submit(batches: PendingBatch[], data: Buffer[], bytes: number): Promise<number[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ batches, data, bytes, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const group = this.queue.splice(0);
      try {
        const batches: PendingBatch[] = [];
        let shift = 0;
        for (const waiting of group) {
          for (const batch of waiting.batches) batches.push({ ...batch, position: batch.position + shift });
          shift += waiting.bytes;
        }
        const pack = Buffer.concat(
          group.flatMap((waiting) => waiting.data),
          shift,
        );
        const offsets = await this.table.append(batches, pack, Date.now());
        let first = 0;
        for (const waiting of group) {
          waiting.resolve(offsets.slice(first, first + waiting.batches.length));
          first += waiting.batches.length;
        }
      } catch (error) {
        for (const waiting of group) waiting.reject(error);
      }
    }
    this.running = false;
  }
}
