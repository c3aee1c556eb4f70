import type { Broker, Topic } from '../broker/index.js';
import { TOPIC_NAME_PATTERN } from '../config/index.js';
import { RillError } from '../errors/index.js';

/** What the coordinator needs of the broker: it reads and writes partitions like any client. */
export type LogAccess = Pick<Broker, 'topic' | 'createTopic' | 'read' | 'offsets' | 'watch' | 'appendAndWait'>;

export interface TopicPolicy {
  autoCreateTopics: boolean;
  defaultPartitions: number;
}

/** The topic a member subscribes to or an offset names: created on first use when auto-create is on. */
export function requireTopic(log: LogAccess, policy: TopicPolicy, name: string): Topic {
  const existing = log.topic(name);
  if (existing !== undefined) return existing;
  if (!TOPIC_NAME_PATTERN.test(name) || name.startsWith('__')) throw new RillError('invalid-request', `invalid topic name "${name.slice(0, 300)}"`);
  if (!policy.autoCreateTopics) throw new RillError('unknown-topic', `topic "${name}" does not exist and auto-create is off`);
  return log.createTopic(name, policy.defaultPartitions);
}
