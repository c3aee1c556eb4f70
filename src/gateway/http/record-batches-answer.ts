import type { FetchedBatches, MemberView } from '../../coordinator/index.js';
import { RawAnswer } from './router.js';

const RECORD_BATCHES_CONTENT_TYPE = 'application/vnd.rill.record-batches';

/**
 * A fetch's answer: a uint32 (big-endian) length, that many bytes of JSON (the member's view and,
 * per partition, its topic, partition, fetch offset and byte count), then each partition's batches
 * as stored, in that order. The batches are written as they came from the broker workers, never
 * copied into one buffer or decoded.
 */
export function recordBatchesAnswer(view: MemberView, partitions: readonly FetchedBatches[]): RawAnswer {
  const head = Buffer.from(
    JSON.stringify({
      ...view,
      partitions: partitions.map(({ topic, partition, fetchOffset, batches }) => ({ topic, partition, fetchOffset, bytes: batches.length })),
    }),
  );
  const length = Buffer.alloc(4);
  length.writeUInt32BE(head.length);
  return new RawAnswer(RECORD_BATCHES_CONTENT_TYPE, [length, head, ...partitions.map((p) => p.batches)]);
}
