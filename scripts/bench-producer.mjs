// One benchmark producer process: connects over WebSocket, waits for "go" on stdin, publishes
// `count` messages of `size` bytes as fast as the window allows (a receipt every `receiptEvery`
// messages, at most `window` receipts outstanding), then prints its figures as JSON. `keyless`
// leaves the key out of the body, so that the broker spreads the messages round-robin (by default
// the key cycles through 1,000 values). If the server closes the connection first (killed), the
// figures printed count the messages acknowledged until then, with "closed": true. The message
// text is 'x' repeated, or with `words` words drawn at random (512 different texts, in turn), so
// that compression meets text as compressible as ordinary JSON, not a run of one letter.
//   node scripts/bench-producer.mjs <url> <topic> <count> <size> <receiptEvery> <window> <id> [keyed|keyless] [x|words]
// RILL_BENCH_LOGIN and RILL_BENCH_PASSCODE, when set, are sent in CONNECT; RILL_BENCH_CA names a
// CA certificate file to trust for a wss:// url.
import fs from 'node:fs';
import { WebSocket } from 'ws';

const [url, topic, countText, sizeText, receiptEveryText, windowText, id, keyMode = 'keyed', textMode = 'x'] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);
const receiptEvery = Number(receiptEveryText);
const window = Number(windowText);
const keyed = keyMode !== 'keyless';

function template(size) {
  const head = `{"messageID":"${id}-0000000000",${keyed ? '"key":"key-000",' : ''}"message":"`;
  const tail = `","timestamp":1700000000000}`;
  const padding = Math.max(1, size - head.length - tail.length);
  return Buffer.from(head + 'x'.repeat(padding) + tail);
}

const body = template(size);
const WORDS =
  'order customer payment shipped pending account balance invoice total amount currency status created updated region warehouse item quantity price discount user session device event click view cart checkout delivered returned refund priority standard express'.split(
    ' ',
  );
/** The texts cycled through in `words` mode: the template's padding filled with random words, 512 different ones. */
const texts =
  textMode === 'words'
    ? Array.from({ length: 512 }, () => {
        const padStart = body.indexOf('"message":"') + 11;
        const padEnd = body.lastIndexOf('","timestamp"');
        let words = '';
        while (words.length < padEnd - padStart) words += `${WORDS[Math.floor(Math.random() * WORDS.length)]} ${Math.floor(Math.random() * 10_000)} `;
        return { at: padStart, bytes: Buffer.from(words.slice(0, padEnd - padStart)) };
      })
    : null;
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
  if (keyed) bytes.write(String(n % 1000).padStart(3, '0'), start + keyDigits, 'latin1');
  if (texts !== null) {
    const text = texts[n % texts.length];
    text.bytes.copy(bytes, start + text.at);
  }
  return bytes;
}

const ca = process.env.RILL_BENCH_CA === undefined ? undefined : fs.readFileSync(process.env.RILL_BENCH_CA);
const socket = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false, ...(ca === undefined ? {} : { ca }) });
const credentials =
  process.env.RILL_BENCH_LOGIN === undefined ? '' : `login:${process.env.RILL_BENCH_LOGIN}\npasscode:${process.env.RILL_BENCH_PASSCODE ?? ''}\n`;
let sent = 0;
let receipts = 0;
let started = 0;
let finished = false;

function report(messages, extra = {}) {
  finished = true;
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(JSON.stringify({ id, messages, bytes: messages * body.length, seconds, ...extra }) + '\n');
}

function pump() {
  while (sent < count && sent - receipts * receiptEvery < window * receiptEvery) {
    socket.send(frame(sent++), { binary: false });
  }
}

socket.on('open', () => socket.send(`CONNECT\naccept-version:1.2\nhost:bench\n${credentials}\n\0`));
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
    report(count);
    socket.close();
    setTimeout(() => process.exit(0), 50);
    return;
  }
  pump();
});
// The server went away (a kill -9 in the start-up case): report what was acknowledged until then.
socket.on('error', (error) => {
  if (started === 0) process.stderr.write(`producer ${id}: ${error.message}\n`);
});
socket.on('close', () => {
  if (finished) return;
  if (started === 0) process.exit(1);
  report(Math.min(count, receipts * receiptEvery), { closed: true });
  process.exit(0);
});
process.stdin.once('data', () => {
  started = performance.now();
  pump();
});
