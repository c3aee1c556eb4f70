import { expect } from 'vitest';
import type { RawStompClient, StoredMessage } from './clients.js';
import type { PartitionOffsets } from './http.js';

/** One message on `/topic/acknowledgment/<topic>`. */
export interface Ack {
  messageID: string;
  status: 'ACK' | 'FAILED';
  partition: number;
  offset: number;
  retriable?: boolean;
  /** A resend of a message stored before: nothing was stored now. */
  duplicate?: boolean;
}

/** The acknowledgments a producer has received, parsed as they come (not all again at every look). */
export class Acknowledgments {
  readonly list: Ack[] = [];
  /** messageIDs with any answer. */
  readonly ids = new Set<string>();
  /** messageIDs acknowledged as stored. */
  readonly acknowledged = new Set<string>();
  private seen = 0;
  constructor(private readonly client: RawStompClient) {}

  /** Every acknowledgment received so far. */
  get all(): readonly Ack[] {
    const frames = this.client.all('MESSAGE');
    for (; this.seen < frames.length; this.seen++) {
      const ack = JSON.parse(frames[this.seen]!.body.toString()) as Ack;
      this.list.push(ack);
      this.ids.add(ack.messageID);
      if (ack.status === 'ACK') this.acknowledged.add(ack.messageID);
    }
    return this.list;
  }
}

/**
 * What is stored is exactly what should be, in both directions:
 * - every acknowledged messageID is stored exactly once, at the partition and offset of its acknowledgment;
 * - every stored messageID is one that was published (none invented), and none is stored twice;
 * - each partition's offsets are dense, from its start to its end offset, with nothing missing.
 */
export function expectStoredExactly(acks: readonly Ack[], published: ReadonlySet<string>, stored: StoredMessage[], partitions: PartitionOffsets[]): void {
  const places = new Map<string, string[]>();
  for (const m of stored) places.set(m.messageId, [...(places.get(m.messageId) ?? []), `${m.partition}/${m.offset}`]);

  const acked = acks.filter((a) => a.status === 'ACK');
  expect(acked.length).toBeGreaterThan(0);
  const misplaced = acked
    .map((a) => ({ id: a.messageID, acknowledgedAt: `${a.partition}/${a.offset}`, storedAt: places.get(a.messageID) ?? [] }))
    .filter((m) => m.storedAt.length !== 1 || m.storedAt[0] !== m.acknowledgedAt);
  expect(misplaced.slice(0, 10), `${misplaced.length} acknowledged messages not stored exactly once at their place`).toEqual([]);

  const invented = [...places.keys()].filter((id) => !published.has(id));
  expect(invented.slice(0, 10), `${invented.length} stored messages that were never published`).toEqual([]);
  const doubled = [...places].filter(([, at]) => at.length > 1);
  expect(doubled.slice(0, 10), `${doubled.length} messages stored more than once`).toEqual([]);

  for (const { partition, logStartOffset, logEndOffset } of partitions) {
    const offsets = stored
      .filter((m) => m.partition === partition)
      .map((m) => m.offset)
      .sort((a, b) => a - b);
    const dense = offsets.length === logEndOffset - logStartOffset && offsets.every((offset, i) => offset === logStartOffset + i);
    expect(dense, `partition ${partition}: ${offsets.length} records for offsets ${logStartOffset} to ${logEndOffset - 1}`).toBe(true);
  }
}
