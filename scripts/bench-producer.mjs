// One benchmark producer process: connects over WebSocket, waits for "go" on stdin, publishes
// `count` messages of `size` bytes as fast as the window allows (a receipt every `receiptEvery`
// messages, at most `window` receipts outstanding), then prints its figures as JSON.
//   node scripts/bench-producer.mjs <url> <topic> <count> <size> <receiptEvery> <window> <id>
import { WebSocket } from 'ws';

const [url, topic, countText, sizeText, receiptEveryText, windowText, id] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);
const receiptEvery = Number(receiptEveryText);
const window = Number(windowText);

function template(size) {
  const head = `{"messageID":"${id}-0000000000","key":"key-000","message":"`;
  const tail = `","timestamp":1700000000000}`;
  const padding = Math.max(1, size - head.length - tail.length);
  return Buffer.from(head + 'x'.repeat(padding) + tail);
}

const body = template(size);
const idDigits = body.indexOf('-0000000000') + 1;
const keyDigits = body.indexOf('key-000') + 4;
const plain = Buffer.concat([Buffer.from(`SEND\ndestination:/producer/publish/${topic}\ncontent-length:${body.length}\n\n`), body, Buffer.from([0])]);
const bodyStart = plain.length - 1 - body.length;

function frame(n) {
  const withReceipt = (n + 1) % receiptEvery === 0;
  let bytes;
  let start;
  if (withReceipt) {
    const head = Buffer.from(`SEND\ndestination:/producer/publish/${topic}\nreceipt:${n}\ncontent-length:${body.length}\n\n`);
    bytes = Buffer.concat([head, body, Buffer.from([0])]);
    start = head.length;
  } else {
    bytes = Buffer.from(plain);
    start = bodyStart;
  }
  bytes.write(String(n).padStart(10, '0'), start + idDigits - 0, 'latin1');
  bytes.write(String(n % 1000).padStart(3, '0'), start + keyDigits, 'latin1');
  return bytes;
}

const socket = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
let sent = 0;
let receipts = 0;
let started = 0;

function pump() {
  while (sent < count && sent - receipts * receiptEvery < window * receiptEvery) {
    socket.send(frame(sent++), { binary: false });
  }
}

socket.on('open', () => socket.send('CONNECT\naccept-version:1.2\nhost:bench\n\n\0'));
socket.on('message', (data) => {
  const text = data.toString();
  if (text.startsWith('CONNECTED')) {
    process.stdout.write('ready\n');
    return;
  }
  if (text.startsWith('ERROR')) {
    process.stderr.write(text + '\n');
    process.exit(1);
  }
  for (let at = text.indexOf('RECEIPT'); at !== -1; at = text.indexOf('RECEIPT', at + 1)) receipts++;
  if (receipts * receiptEvery >= count) {
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(JSON.stringify({ id, messages: count, bytes: count * body.length, seconds }) + '\n');
    socket.close();
    setTimeout(() => process.exit(0), 50);
    return;
  }
  pump();
});
process.stdin.once('data', () => {
  started = performance.now();
  pump();
});
