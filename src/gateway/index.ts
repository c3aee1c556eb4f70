export { Gateway } from './gateway.js';
export { StompSession } from './session.js';
export { parseDestination, acknowledgmentDestination, topicDestination, type Destination } from './destinations.js';
export { handleHttpRequest, type HttpContext } from './http/router.js';
