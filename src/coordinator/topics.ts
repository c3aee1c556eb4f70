import type { Broker, Topic, TopicRegistry } from '../broker/index.js';

/**
 * What the coordinator needs of the broker: it reads and writes partitions like any client, and
 * finds topics through the one registry (which checks names and applies the auto-create policy).
 */
export type LogAccess = Pick<Broker, 'read' | 'offsets' | 'watch' | 'appendAndWait' | 'delivered'> & {
  readonly topics: Pick<TopicRegistry, 'get' | 'resolve' | 'internal'>;
};

/** The topic a member subscribes to or an offset names: created on first use when auto-create is on. */
export function requireTopic(log: LogAccess, name: string): Topic {
  return log.topics.resolve(name, 'auto');
}
