export { DecidedTransactionError, TransactionCoordinator, type TransactionalOffsets } from './transaction-coordinator.js';
