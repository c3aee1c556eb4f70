export { Publisher } from './publisher.js';
export { PublishError, type PublishAuthorizer, type PublishRequest } from './publish-request.js';
export { ReceiptCountdown } from './publish-ticket.js';
export type { AcknowledgmentSink, Producer } from './producer.js';
export { transact, transactInput, type TransactInput } from './transact-request.js';
