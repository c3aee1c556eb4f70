// The ceiling Rill is measured against: a bare `ws` server that parses STOMP frames with Rill's
// own codec, counts them, and answers CONNECT and receipts, storing nothing.
// With --relay it is also the ceiling for publish-to-deliver latency: each SEND's body is
// forwarded at once as a MESSAGE to every subscriber of the same topic (the last segment of the
// destination, so that /producer/publish/t reaches /topic/t and /group/<g>/t), nothing stored.
//   node scripts/bare-stomp-server.mjs <port> [--relay]
import { WebSocketServer } from 'ws';
import { encodeFrame, FrameParser } from '../dist/protocol/stomp/index.js';

const port = Number(process.argv[2] ?? 0);
const relay = process.argv.includes('--relay');
let frames = 0;
/** Relay mode: topic -> subscriptions ({ socket, id, destination }). */
const subscribers = new Map();
let relayed = 0;

const topicOf = (destination) => destination.slice(destination.lastIndexOf('/') + 1);

const server = new WebSocketServer({ port, host: '127.0.0.1', perMessageDeflate: false, handleProtocols: (p) => (p.has('v12.stomp') ? 'v12.stomp' : false) });
server.on('connection', (socket) => {
  const mine = [];
  const parser = new FrameParser((frame) => {
    frames++;
    if (frame.command === 'CONNECT' || frame.command === 'STOMP') {
      socket.send(encodeFrame('CONNECTED', { version: '1.2' }));
      return;
    }
    if (frame.command === 'SUBSCRIBE' && frame.headers['x-bench-count'] !== undefined) {
      stream(socket, frame.headers.id, Number(frame.headers['x-bench-count']));
      return;
    }
    if (relay) route(socket, frame, mine);
    if (frame.headers.receipt !== undefined) socket.send(encodeFrame('RECEIPT', { 'receipt-id': frame.headers.receipt }));
  });
  socket.on('message', (data) => parser.push(data));
  socket.on('close', () => {
    for (const subscription of mine) subscribers.get(subscription.topic)?.delete(subscription);
  });
});

/** Relay mode: SUBSCRIBE and UNSUBSCRIBE keep the subscriber lists; a SEND goes to the topic's subscribers as a MESSAGE. */
function route(socket, frame, mine) {
  if (frame.command === 'SEND') {
    const topic = topicOf(frame.headers.destination ?? '');
    const list = subscribers.get(topic);
    if (list === undefined) return;
    const offset = relayed++;
    for (const subscription of list) {
      subscription.socket.send(
        encodeFrame(
          'MESSAGE',
          {
            subscription: subscription.id,
            'message-id': String(offset),
            destination: subscription.destination,
            topic,
            partition: 0,
            offset,
            timestamp: Date.now(),
          },
          frame.body,
        ),
      );
    }
  } else if (frame.command === 'SUBSCRIBE') {
    const subscription = { socket, id: frame.headers.id, destination: frame.headers.destination, topic: topicOf(frame.headers.destination ?? '') };
    if (!subscribers.has(subscription.topic)) subscribers.set(subscription.topic, new Set());
    subscribers.get(subscription.topic).add(subscription);
    mine.push(subscription);
  } else if (frame.command === 'UNSUBSCRIBE') {
    for (const subscription of mine) if (subscription.id === frame.headers.id) subscribers.get(subscription.topic)?.delete(subscription);
  }
}

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
  process.stderr.write(`frames: ${frames}${relay ? `, relayed: ${relayed}` : ''}\n`);
  process.exit(0);
});
