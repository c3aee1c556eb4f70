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
    else if (frame.command === 'SUBSCRIBE' && frame.headers['x-bench-count'] !== undefined)
      stream(socket, frame.headers.id, Number(frame.headers['x-bench-count']));
    else if (frame.headers.receipt !== undefined) socket.send(encodeFrame('RECEIPT', { 'receipt-id': frame.headers.receipt }));
  });
  socket.on('message', (data) => parser.push(data));
});
// The delivery ceiling: prebuilt 100-byte MESSAGE frames, as fast as the socket drains.
function stream(socket, subscription, count) {
  const body = Buffer.from(`{"messageID":"b-0000000000","key":"key-000","message":"${'x'.repeat(37)}","timestamp":1700000000000}`);
  const frame = encodeFrame(
    'MESSAGE',
    { subscription, 'message-id': 'b', destination: '/topic/bare', topic: 'bare', partition: 0, offset: 0, key: 'key-000', timestamp: 1700000000000 },
    body,
  );
  let sent = 0;
  const pump = () => {
    while (sent < count && socket.bufferedAmount < 1024 * 1024) {
      socket.send(frame);
      sent++;
    }
    if (sent < count) setImmediate(pump);
  };
  pump();
}

server.on('listening', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n'));
process.on('SIGTERM', () => {
  process.stderr.write(`frames: ${frames}\n`);
  process.exit(0);
});
