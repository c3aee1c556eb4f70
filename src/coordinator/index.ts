export { GroupCoordinator, type CoordinatorOptions, type MemberView, type PulledRecord, type PullOptions, type SeekTarget } from './coordinator.js';
export { OffsetStore, brokerOffsetLog, OFFSETS_TOPIC, type OffsetLog } from './offset-store.js';
export { assign, tpKey, type AssignorName, type TopicPartition, type Assignment } from './assignors.js';
export { Member, ConsumerGroup, type GroupSettings, type AssignmentListener } from './group.js';
export { operations, answers, type OperationName } from './operations.js';
