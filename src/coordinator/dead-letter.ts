import { partitionForKey, type StoredRecord } from '../broker/index.js';
import type { TopicPartition } from './assignors.js';
import type { Clock } from './clock.js';
import type { LogAccess } from './topics.js';

/** A message its group gave up on: rejected `deliveries` times. */
export interface Rejection {
  group: string;
  topic: string;
  partition: number;
  record: StoredRecord;
  deliveries: number;
}

/**
 * The headers a dead letter carries: the record's own (less any left by an earlier dead-lettering),
 * then why it is here and where it came from.
 */
function deadLetterHeaders({ group, topic, partition, record, deliveries }: Rejection): Array<[string, string]> {
  return [
    ...record.headers.filter(([name]) => !name.startsWith('x-dead-letter') && !name.startsWith('x-original')),
    ['x-dead-letter-reason', `rejected (NACK) ${deliveries} times by group ${group}`],
    ['x-delivery-count', String(deliveries)],
    ['x-original-topic', topic],
    ['x-original-partition', String(partition)],
    ['x-original-offset', String(record.offset)],
    ['x-consumer-group', group],
  ];
}

/**
 * Dead-lettering: a message rejected `maxDeliveries` times goes to `<topic><deadLetterSuffix>`
 * (created on first use), with its key, messageID and value, so that the group can move on.
 */
export class DeadLetters {
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
    return { topic: name, partition, offset };
  }
}
