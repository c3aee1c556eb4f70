export { Broker, type AppendTicket, type PartitionWatcher, type ReadResult } from './front/broker.js';
export { TopicRegistry, isInternal, type Topic, type TopicCreation } from './front/topic-registry.js';
export { hashKey, partitionForKey, RoundRobin } from './front/partitioner.js';
export type { PartitionOffsets, WorkerFailure } from './protocol.js';
export { forEachRecord, type StoredRecord, type RecordHeaders } from '../storage/index.js';
