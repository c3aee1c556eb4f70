// A producer like the seed's producer.py: publishes a message to <topic> every <delay> seconds
// over STOMP/WebSocket and prints each acknowledgment.
//   npx tsx examples/producer.ts <topic> <delay-seconds> [ws://127.0.0.1:8080/stomp]
import { randomUUID } from 'node:crypto';
import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';

const [topic, delayText = '1', url = 'ws://127.0.0.1:8080/stomp'] = process.argv.slice(2);
if (topic === undefined) {
  console.error('usage: npx tsx examples/producer.ts <topic> <delay-seconds> [url]');
  process.exit(2);
}
const delayMs = Number(delayText) * 1000;

const client = new Client({ webSocketFactory: () => new WebSocket(url, ['v12.stomp']), reconnectDelay: 2000 });
let timer: NodeJS.Timeout | undefined;
let sequence = 0;

client.onConnect = () => {
  console.log(`connected to ${url}; publishing to ${topic} every ${delayMs / 1000} s`);
  client.subscribe(`/topic/acknowledgment/${topic}`, (message) => console.log('ack', message.body));
  timer = setInterval(() => {
    sequence++;
    const body = { messageID: randomUUID(), key: `key-${sequence % 5}`, message: `message number ${sequence}`, timestamp: Date.now() };
    client.publish({ destination: `/producer/publish/${topic}`, body: JSON.stringify(body) });
    console.log('sent', body.messageID, body.key);
  }, delayMs);
};
client.onWebSocketClose = () => clearInterval(timer);
client.onStompError = (frame) => console.error('error from Rill:', frame.headers.message);
client.activate();
process.on('SIGINT', () => void client.deactivate().then(() => process.exit(0)));
