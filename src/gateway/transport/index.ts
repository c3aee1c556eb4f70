export type { Transport, TransportEvents } from './transport.js';
export { WebSocketTransport, WEBSOCKET_MESSAGE_TOO_BIG } from './websocket-transport.js';
export { TcpTransport } from './tcp-transport.js';
export { verifiedCertificateSubject } from './peer-certificate.js';
