// The ceiling Rill is measured against: a bare `ws` server that parses STOMP frames with Rill's
// own codec, counts them, and answers CONNECT and receipts, storing nothing.
//   node scripts/bare-stomp-server.mjs <port>
import { WebSocketServer } from 'ws';
import { encodeFrame, FrameParser } from '../dist/protocol/stomp/index.js';

const port = Number(process.argv[2] ?? 0);
let frames = 0;
const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: (p) => (p.has('v12.stomp') ? 'v12.stomp' : false) });
server.on('connection', (socket) => {
  const parser = new FrameParser((frame) => {
    frames++;
    if (frame.command === 'CONNECT' || frame.command === 'STOMP') socket.send(encodeFrame('CONNECTED', { version: '1.2' }));
    else if (frame.headers.receipt !== undefined) socket.send(encodeFrame('RECEIPT', { 'receipt-id': frame.headers.receipt }));
  });
  socket.on('message', (data) => parser.push(data));
});
server.on('listening', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => {
  process.stderr.write(`frames: ${frames}\n`);
  process.exit(0);
});
