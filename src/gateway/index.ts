export { Gateway } from './gateway.js';
export { httpRoutes } from './http/routes.js';
export type { HttpContext, HttpRouter } from './http/router.js';
export type { ConnectionView } from './stomp/session.js';
