export { Broker, CallbackTicket, type Topic, type AppendOutcome, type AppendFailure, type ReadResult } from './broker.js';
export { hashKey, partitionForKey, RoundRobin } from './partitioner.js';
export type { PartitionOffsets } from './messages.js';
export {
  forEachRecord,
  type StoredRecord,
  type RecordHeaders,
} from '../storage/index.js';
