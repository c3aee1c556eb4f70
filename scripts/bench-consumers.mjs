// Consumer-side benchmark cases for `npm run bench` (see bench.mjs): draining a backlog by pull
// and by push, fan-out, end-to-end latency, and how fast partitions move after a leave or a death.
import { WebSocket } from 'ws';
import { encodeFrame, FrameParser } from '../dist/protocol/stomp/index.js';
import { forEachRecord } from '../dist/storage/index.js';
import { sendAtRate } from './bench-lib.mjs';

async function post(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(answer)}`);
  return answer;
}

/** A raw STOMP-over-WebSocket peer that counts MESSAGE frames with Rill's codec. */
export async function stompPeer(url, onMessage) {
  const socket = new WebSocket(url, ['v12.stomp'], { perMessageDeflate: false });
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  let connected;
  const ready = new Promise((resolve) => (connected = resolve));
  const parser = new FrameParser(
    (frame) => {
      if (frame.command === 'CONNECTED') connected();
      else if (frame.command === 'MESSAGE') onMessage(frame);
      else if (frame.command === 'ERROR') process.stderr.write(`ERROR ${frame.headers.message}\n`);
    },
    { maxFrameBytes: 64 * 1024 * 1024, maxHeaders: 1000, maxHeaderBytes: 1024 * 1024 },
  );
  socket.on('message', (data) => parser.push(data));
  socket.send(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'bench' }));
  await ready;
  return {
    send: (command, headers, body) => socket.send(encodeFrame(command, headers, body)),
    close: () => socket.close(),
  };
}

/** Drains `total` messages of a topic with a group of `members` pulling over HTTP, committing each batch. */
export async function pullDrain(httpBase, topic, group, members, total) {
  const names = Array.from({ length: members }, (_, i) => `${group}-m${i}`);
  for (const member of names) await post(httpBase, 'POST', `/v1/groups/${group}/members`, { member, topics: [topic] });
  let drained = 0;
  const started = performance.now();
  await Promise.all(
    names.map(async (member) => {
      let empty = 0;
      while (drained < total && empty < 3) {
        const answer = await post(httpBase, 'POST', `/v1/groups/${group}/members/${member}/pull`, { maxMessages: 10_000, maxBytes: 4 * 1024 * 1024 });
        if (answer.records.length === 0) {
          empty++;
          continue;
        }
        empty = 0;
        drained += answer.records.length;
        const next = new Map();
        for (const r of answer.records) next.set(`${r.topic}/${r.partition}`, { topic: r.topic, partition: r.partition, offset: r.offset + 1 });
        await post(httpBase, 'POST', `/v1/groups/${group}/members/${member}/commit`, { offsets: [...next.values()] });
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  for (const member of names) await post(httpBase, 'DELETE', `/v1/groups/${group}/members/${member}`);
  return { messages: drained, seconds, rate: drained / seconds };
}

/**
 * Drains `total` messages with one member fetching record batches (POST .../fetch: the stored
 * batches as they are) and decoding them itself with a RecordBatch v2 decoder (Rill's, from dist/),
 * as a Kafka client does, committing after each fetch.
 */
export async function fetchDrain(httpBase, topic, group, total) {
  const member = `${group}-m0`;
  await post(httpBase, 'POST', `/v1/groups/${group}/members`, { member, topics: [topic] });
  let drained = 0;
  let empty = 0;
  const started = performance.now();
  while (drained < total && empty < 3) {
    const response = await fetch(`${httpBase}/v1/groups/${group}/members/${member}/fetch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ maxBytes: 4 * 1024 * 1024 }),
    });
    const bytes = Buffer.from(await response.arrayBuffer());
    const headLength = bytes.readUInt32BE(0);
    const head = JSON.parse(bytes.toString('utf8', 4, 4 + headLength));
    if (head.partitions.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    let position = 4 + headLength;
    const offsets = [];
    for (const part of head.partitions) {
      let last = -1;
      forEachRecord(bytes.subarray(position, position + part.bytes), part.fetchOffset, (record) => {
        drained++;
        last = record.offset;
      });
      if (last >= 0) offsets.push({ topic: part.topic, partition: part.partition, offset: last + 1 });
      position += part.bytes;
    }
    if (offsets.length > 0) await post(httpBase, 'POST', `/v1/groups/${group}/members/${member}/commit`, { offsets });
  }
  const seconds = (performance.now() - started) / 1000;
  await post(httpBase, 'DELETE', `/v1/groups/${group}/members/${member}`);
  return { messages: drained, seconds, rate: drained / seconds };
}

/** Drains `total` messages pushed to one group subscriber, acknowledging cumulatively every 1000. */
export async function pushDrain(url, topic, group, total) {
  let received = 0;
  let resolveDone;
  const done = new Promise((resolve) => (resolveDone = resolve));
  let peer;
  const started = performance.now();
  peer = await stompPeer(url, (frame) => {
    received++;
    if (received % 1000 === 0 || received === total) peer.send('ACK', { id: frame.headers.ack });
    if (received === total) resolveDone();
  });
  peer.send('SUBSCRIBE', { id: 'drain', destination: `/group/${group}/${topic}`, ack: 'client', 'prefetch-count': '20000' });
  await done;
  const seconds = (performance.now() - started) / 1000;
  peer.close();
  return { messages: received, seconds, rate: received / seconds };
}

/** `subscribers` live tails reading a topic of `perSubscriber` messages from the earliest offset. */
export async function fanOut(url, topic, subscribers, perSubscriber) {
  let delivered = 0;
  let finished = 0;
  let resolveDone;
  const done = new Promise((resolve) => (resolveDone = resolve));
  const peers = [];
  for (let i = 0; i < subscribers; i++) {
    let mine = 0;
    peers.push(
      await stompPeer(url, () => {
        delivered++;
        if (++mine === perSubscriber && ++finished === subscribers) resolveDone();
      }),
    );
  }
  const started = performance.now();
  for (const [i, peer] of peers.entries()) peer.send('SUBSCRIBE', { id: `fan-${i}`, destination: `/topic/${topic}`, from: 'earliest' });
  await done;
  const seconds = (performance.now() - started) / 1000;
  for (const peer of peers) peer.close();
  return { deliveries: delivered, seconds, rate: delivered / seconds };
}

/** The bare ceiling for deliveries: the bare server streams `count` prebuilt MESSAGE frames. */
export async function bareDeliveries(url, count) {
  let received = 0;
  let resolveDone;
  const done = new Promise((resolve) => (resolveDone = resolve));
  const peer = await stompPeer(url, () => {
    if (++received === count) resolveDone();
  });
  const started = performance.now();
  peer.send('SUBSCRIBE', { id: 'bare', destination: '/topic/bare', 'x-bench-count': String(count) });
  await done;
  const seconds = (performance.now() - started) / 1000;
  peer.close();
  return { messages: received, seconds, rate: received / seconds };
}

/** Publishes at `rate` msgs/s and times each message from SEND to its delivery to a group push subscriber. */
export async function endToEnd(url, topic, rate, seconds) {
  const samples = [];
  const consumer = await stompPeer(url, (frame) => {
    const sent = Number(/"sent":([0-9.]+)/.exec(frame.body.toString())[1]);
    samples.push(performance.now() - sent);
  });
  consumer.send('SUBSCRIBE', { id: 'e2e', destination: `/group/e2e/${topic}`, ack: 'auto', receipt: 'r' });
  await new Promise((r) => setTimeout(r, 500));
  const producer = await stompPeer(url, () => {});
  const total = rate * seconds;
  await sendAtRate(rate, total, (n) =>
    producer.send(
      'SEND',
      { destination: `/producer/publish/${topic}` },
      `{"messageID":"e-${n}","key":"k-${n % 64}","message":"${'x'.repeat(30)}","sent":${performance.now()}}`,
    ),
  );
  const deadline = performance.now() + 5000;
  while (samples.length < total && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  producer.close();
  consumer.close();
  // The first second warms up the JIT and the new group; measure the rest.
  const measured = samples.slice(rate).sort((a, b) => a - b);
  const at = (q) => measured[Math.min(measured.length - 1, Math.floor(q * measured.length))];
  return { count: measured.length, p50: at(0.5), p99: at(0.99), p999: at(0.999) };
}

/** How long until a surviving member is told of the new assignment, after a clean leave and after a death. */
export async function rebalanceTimes(httpBase, topic, sessionTimeoutMs) {
  const group = `rebalance-${Date.now()}`;
  await post(httpBase, 'POST', '/v1/groups', { group, sessionTimeoutMs });
  const measure = async (remove) => {
    await post(httpBase, 'POST', `/v1/groups/${group}/members`, { member: `${group}-stay`, topics: [topic] });
    const leaver = await post(httpBase, 'POST', `/v1/groups/${group}/members`, { member: `${group}-go`, topics: [topic] });
    const started = performance.now();
    await remove();
    for (;;) {
      const view = await post(httpBase, 'POST', `/v1/groups/${group}/members/${group}-stay/heartbeat`, {});
      if (view.generation > leaver.generation) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const leave = await measure(() => post(httpBase, 'DELETE', `/v1/groups/${group}/members/${group}-go`));
  const death = await measure(async () => {}); // the member simply stops sending anything
  return { leave, death };
}
