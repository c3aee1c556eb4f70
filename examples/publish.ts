// Publishes three messages to the topic "orders" and prints each acknowledgment.
//   npx tsx examples/publish.ts [ws://127.0.0.1:8080/stomp]
import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';

const url = process.argv[2] ?? 'ws://127.0.0.1:8080/stomp';
const client = new Client({
  webSocketFactory: () => new WebSocket(url, ['v12.stomp']),
  reconnectDelay: 0,
});

client.onConnect = () => {
  let acknowledged = 0;
  client.subscribe('/topic/acknowledgment/orders', (message) => {
    console.log('acknowledgment:', message.body);
    if (++acknowledged === 3) void client.deactivate();
  });
  for (let i = 1; i <= 3; i++) {
    client.publish({
      destination: '/producer/publish/orders',
      body: JSON.stringify({ messageID: `order-${i}`, key: `customer-${i % 2}`, message: `order number ${i}`, timestamp: Date.now() }),
      headers: { receipt: `receipt-${i}` },
    });
  }
};
client.onStompError = (frame) => {
  console.error('error from Rill:', frame.headers.message);
  void client.deactivate();
};
client.onWebSocketError = () => console.error(`cannot connect to ${url}: is Rill running (npm start)?`);
client.activate();
