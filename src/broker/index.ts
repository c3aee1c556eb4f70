export { Broker, type AppendTicket } from './front/broker.js';
export { TopicRegistry, type Topic } from './front/topic-registry.js';
export { CreationQuota } from './front/creation-quota.js';
export { hashKey, partitionForKey, KeylessPartitioner, type KeylessPartitioning } from './front/partitioner.js';
export { forEachRecord, offsetAfter, type StoredRecord } from '../storage/index.js';
export type { DeduplicatedTicket } from './front/deduplication/index.js';
export { EXPIRES_HEADER, hasExpired } from './message-expiry.js';
export type { PreparedMessage } from './prepared-message.js';
export { WorkerStoppedError } from './front/worker-supervisor.js';
