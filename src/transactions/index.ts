export { TransactionCoordinator } from './transaction-coordinator.js';
