export { TransactionCoordinator, type TransactionalOffsets } from './transaction-coordinator.js';
