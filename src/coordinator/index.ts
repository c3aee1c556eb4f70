export { GroupCoordinator, type CoordinatorOptions, type MemberView, type PulledRecord } from './coordinator.js';
export type { Clock, TimerHandle } from './clock.js';
export type { MemberBinding } from './member-binding.js';
export type { PushDeliveries } from './push-deliveries.js';
export { OffsetStore, brokerOffsetLog, type OffsetLog } from './offset-store.js';
export type { TopicPartition } from './assignors.js';
export type { GroupSettings } from './group.js';
export type { LogAccess } from './topics.js';
export { operations, answers, type OperationName } from './operations.js';
