import type { StoredRecord, Topic } from '../../../broker/index.js';
import type { PartitionReader } from '../command-context.js';
import type { DeliveryChannel } from '../delivery-channel.js';
import { topicDestination } from '../destinations.js';
import { PartitionFeed, type Cursor } from './partition-feed.js';
import type { StartPosition } from './start-position.js';
import type { AckMode } from './subscription.js';

/**
 * A SUBSCRIBE to `/topic/<topic>`: streams the topic's stored messages to this subscriber from
 * its start position on, every partition in offset order. A view of the log: NACK frees the
 * message's place in the window like ACK, and nothing is redelivered.
 */
export class TopicTail extends PartitionFeed {
  private readonly unacked = new Map<number, true>();

  constructor(channel: DeliveryChannel, log: PartitionReader, id: string, number: number, ackMode: AckMode, topic: Topic, prefetch: number) {
    super(channel, log, id, number, ackMode, topic, prefetch, topicDestination(topic.name));
  }

  /** Resolves the start offset of each partition and begins delivering. */
  async start(start: StartPosition, partitions: number[]): Promise<void> {
    await Promise.all(
      partitions.map(async (partition) => {
        const offsets = await this.log.offsets(this.topic, partition, start.kind === 'timestamp' ? start.timestamp : undefined);
        let next: number;
        if (start.kind === 'latest') next = offsets.logEndOffset;
        else if (start.kind === 'earliest') next = offsets.logStartOffset;
        else if (start.kind === 'offset') next = Math.min(Math.max(start.offset, offsets.logStartOffset), offsets.logEndOffset);
        else next = offsets.offsetForTimestamp ?? offsets.logEndOffset;
        if (!this.closed) this.addPartition(partition, next, offsets.logEndOffset);
      }),
    );
    this.resume();
  }

  protected unsettled(): number {
    return this.unacked.size;
  }

  protected delivered(_cursor: Cursor, _record: StoredRecord, sequence: number): void {
    if (sequence > 0) this.unacked.set(sequence, true);
  }

  settle(sequence: number): boolean {
    if (sequence > this.sequence) return false;
    if (this.ackMode === 'client') {
      for (const pending of this.unacked.keys()) {
        if (pending > sequence) break;
        this.unacked.delete(pending);
      }
    } else this.unacked.delete(sequence);
    this.resume();
    return true;
  }
}
