export { Gateway } from './gateway.js';
export { httpRoutes } from './http/routes.js';
