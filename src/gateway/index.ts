export { Gateway } from './gateway.js';
export { settleOutcome } from './publish-outcome.js';
export { PublishTicket, StompSession } from './session.js';
export { parseDestination, acknowledgmentDestination, topicDestination, type Destination } from './destinations.js';
export { handleHttpRequest, type HttpContext } from './http/router.js';
