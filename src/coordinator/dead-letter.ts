import { DELIVER_AT_HEADER, EXPIRES_HEADER, forEachRecord, partitionForKey, type StoredRecord } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import type { TopicPartition } from './assignors.js';
import type { Clock } from './clock.js';
import type { LogAccess } from './topics.js';

/** A message its group gave up on: it failed `deliveries` times, or its consumer rejected it. */
export interface Rejection {
  group: string;
  topic: string;
  partition: number;
  record: StoredRecord;
  deliveries: number;
  /** Why, for the `x-dead-letter-reason` header. */
  reason: string;
}

/**
 * The headers a dead letter carries: the record's own (less any left by an earlier dead-lettering),
 * then why it is here and where it came from.
 */
function deadLetterHeaders({ group, topic, partition, record, deliveries, reason }: Rejection): Array<[string, string]> {
  return [
    // A dead letter neither expires nor waits: it is there to be looked at.
    ...record.headers.filter(
      ([name]) => !name.startsWith('x-dead-letter') && !name.startsWith('x-original') && name !== EXPIRES_HEADER && name !== DELIVER_AT_HEADER,
    ),
    ['x-dead-letter-reason', reason],
    ['x-delivery-count', String(deliveries)],
    ['x-original-topic', topic],
    ['x-original-partition', String(partition)],
    ['x-original-offset', String(record.offset)],
    ['x-consumer-group', group],
  ];
}

/**
 * Dead-lettering: a message that failed `maxDeliveries` times, or that a pull consumer rejected, goes to `<topic><deadLetterSuffix>`
 * (created on first use), with its key, messageID and value, so that the group can move on.
 */
export class DeadLetters {
  /** Messages dead-lettered since the start (for metrics). */
  sent = 0;

  constructor(
    private readonly log: LogAccess,
    private readonly clock: Clock,
  ) {}

  async send(rejection: Rejection, suffix: string): Promise<TopicPartition & { offset: number }> {
    const name = `${rejection.topic}${suffix}`;
    // Created even when auto-create is off, so that no rejected message is lost; the name is still checked.
    const topic = this.log.topics.resolve(name, 'always');
    const { key, messageId, value } = rejection.record;
    // Keyed records keep their key's partition, so that one key's dead letters stay in order.
    const partition = key === null ? 0 : partitionForKey(key, topic.partitions);
    const offset = await this.log.appendAndWait(topic, partition, this.clock.now(), key, messageId, deadLetterHeaders(rejection), value);
    this.sent++;
    return { topic: name, partition, offset };
  }
}

/** The record at `offset` of a partition (a consumer names it to reject it); unknown-message when there is none. */
export async function readRecordAt(log: LogAccess, topicName: string, partition: number, offset: number): Promise<StoredRecord> {
  const topic = log.topics.get(topicName);
  if (topic !== undefined && partition < topic.partitions) {
    const result = await log.read(topic, partition, offset, 1024 * 1024);
    if (result.failure?.code === 'storage-error') throw new RillError('storage-error', result.failure.message);
    let found: StoredRecord | undefined;
    if (result.batches !== null && result.failure === undefined) {
      forEachRecord(result.batches, offset, (record) => {
        if (record.offset === offset) found = record;
        return false;
      });
    }
    if (found !== undefined) return found;
  }
  throw new RillError('unknown-message', `no message at offset ${offset} of ${topicName}/${partition}`);
}
