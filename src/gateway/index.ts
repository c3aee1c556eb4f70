export { Gateway } from './gateway.js';
export { StompSession } from './session.js';
export { parseDestination, acknowledgmentDestination, topicDestination, type Destination } from './destinations.js';
export { httpRoutes } from './http/routes.js';
export type { HttpContext, HttpRouter } from './http/router.js';
