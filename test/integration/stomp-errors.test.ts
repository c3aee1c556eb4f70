import { describe, expect, it } from 'vitest';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, until } from '../helpers/clients.js';
import { httpBase, storedCount, topicOffsets } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

/**
 * Publishes one good message to `topic` from a new connection and waits for its RECEIPT. Anything a
 * client sent before it that was going to be stored is stored by then (a topic's publishes are
 * stored in the order they reach the broker; the same key keeps them in one partition), so the
 * topic holding exactly this one message proves that nothing else was stored.
 */
let barriers = 0;

async function barrier(server: TestServer, topic: string, key = 'k'): Promise<void> {
  const client = await RawStompClient.session(server.stompPort);
  // Each barrier a messageID of its own: a second one with the same ID would be a resend, not stored.
  client.send('SEND', { destination: `/producer/publish/${topic}`, receipt: 'barrier' }, canonical(`barrier-${topic}-${++barriers}`, key, 'barrier'));
  await client.receipt('barrier');
  client.close();
}

/** Nothing but the barrier is stored in `topic`. */
async function expectOnlyTheBarrier(server: TestServer, topic: string, key = 'k'): Promise<void> {
  await barrier(server, topic, key);
  expect(await storedCount(httpBase(server.httpPort), topic)).toBe(1);
}

/** No topic was created at all (so nothing was stored anywhere). */
async function expectNoTopics(server: TestServer): Promise<void> {
  await barrier(server, 'barrier-topic');
  const topics = (await fetch(`${httpBase(server.httpPort)}/v1/topics`).then((r) => r.json())) as { topics: Array<{ name: string }> };
  expect(topics.topics.map((t) => t.name).filter((name) => !name.startsWith('__'))).toEqual(['barrier-topic']);
}

/** Every mistake a client can make gets an ERROR frame with a readable message, then the server closes. */
describe('client errors', () => {
  const servers = useServers();

  async function expectError(client: RawStompClient, message: RegExp, receipt?: string): Promise<void> {
    const error = await client.next('ERROR');
    expect(error.headers.message).toMatch(message);
    if (receipt !== undefined) expect(error.headers['receipt-id']).toBe(receipt);
    await client.closedByServer();
  }

  it('answers garbage with an ERROR, flushed before the close, and serves everyone else on', async () => {
    const server = await servers.start();
    const bystander = await connectStompJs(server.wsUrl);
    const acks = collect(bystander, '/topic/acknowledgment/t');
    const bad = await RawStompClient.session(server.stompPort);
    bad.write('this is not STOMP\n\n\0');
    await expectError(bad, /not a command/);
    await publishWithReceipt(bystander, '/producer/publish/t', canonical('still-ok', 'k', 'v'));
    const ack = await until('the acknowledgment', () => acks[0]);
    expect(JSON.parse(ack.body)).toMatchObject({ messageID: 'still-ok', status: 'ACK' });
    expect(await storedCount(httpBase(server.httpPort), 't')).toBe(1);
    await bystander.deactivate();
  });

  it('refuses a frame larger than the limit, naming the limit and the receipt', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 4096 } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('SEND', { destination: '/producer/publish/t', receipt: 'big-1', key: 'k' }, 'x'.repeat(10_000));
    await expectError(client, /exceeds the limit of 4096/, 'big-1');
    await expectOnlyTheBarrier(server, 't');
  });

  it('refuses too many headers and too long a header', async () => {
    const server = await servers.start({ stomp: { maxHeaders: 8, maxHeaderBytes: 100 } });
    const many = await RawStompClient.session(server.stompPort);
    const headers: Record<string, string> = { destination: '/topic/t' };
    for (let i = 0; i < 10; i++) headers[`h${i}`] = 'v';
    many.send('SEND', headers, 'x');
    await expectError(many, /more than 8 headers/);
    const long = await RawStompClient.session(server.stompPort);
    long.send('SEND', { destination: '/topic/t', big: 'y'.repeat(200) }, 'x');
    await expectError(long, /longer than 100 bytes/);
    await expectNoTopics(server);
  });

  it('refuses an undefined escape and a header without a colon', async () => {
    const server = await servers.start();
    const badEscape = await RawStompClient.session(server.stompPort);
    badEscape.write('SEND\ndestination:/topic/a\\tb\n\nx\0');
    await expectError(badEscape, /undefined escape sequence/);
    const colon = await RawStompClient.session(server.stompPort);
    colon.write('SEND\nreceipt:r9\ndestination:/topic/a\nno-colon-here\n\nx\0');
    await expectError(colon, /no colon/, 'r9');
    await expectNoTopics(server);
  });

  it('requires CONNECT first and refuses a second CONNECT', async () => {
    const server = await servers.start();
    const early = await RawStompClient.connect(server.stompPort);
    early.send('SEND', { destination: '/topic/t', key: 'k' }, 'x');
    await expectError(early, /expected CONNECT or STOMP/);
    const twice = await RawStompClient.session(server.stompPort);
    twice.send('CONNECT', { 'accept-version': '1.2' });
    await expectError(twice, /already connected/);
    await expectNoTopics(server);
  });

  it('negotiates the version, and refuses with a version header when none is common', async () => {
    const server = await servers.start();
    const old = await RawStompClient.connect(server.stompPort);
    old.send('CONNECT', { 'accept-version': '1.0,1.1' });
    const connected = await old.next('CONNECTED');
    expect(connected.headers.version).toBe('1.1');
    expect(connected.headers.server).toMatch(/^rill\//);
    expect(connected.headers.session).toBeTruthy();
    old.close();
    const future = await RawStompClient.connect(server.stompPort);
    future.send('CONNECT', { 'accept-version': '2.0' });
    const error = await future.next('ERROR');
    expect(error.headers.version).toBe('1.0,1.1,1.2');
    expect(error.headers.message).toMatch(/no common STOMP version/);
    await future.closedByServer();
  });

  it('refuses unknown commands and an invalid heart-beat header', async () => {
    const server = await servers.start();
    const unknown = await RawStompClient.session(server.stompPort);
    unknown.send('FROB', { receipt: 'f1' });
    await expectError(unknown, /unknown command FROB/, 'f1');
    const beat = await RawStompClient.connect(server.stompPort);
    beat.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': 'often' });
    await expectError(beat, /invalid heart-beat/);
  });

  it('refuses a SEND without destination, or to a destination that cannot be published to', async () => {
    const server = await servers.start();
    const none = await RawStompClient.session(server.stompPort);
    none.send('SEND', { receipt: 'd1' }, 'x');
    await expectError(none, /needs a destination/, 'd1');
    const wrong = await RawStompClient.session(server.stompPort);
    wrong.send('SEND', { destination: '/queue/elsewhere' }, 'x');
    await expectError(wrong, /cannot publish to "\/queue\/elsewhere"/);
    const ack = await RawStompClient.session(server.stompPort);
    ack.send('SEND', { destination: '/topic/acknowledgment/t', key: 'k' }, 'x');
    await expectError(ack, /cannot publish to "\/topic\/acknowledgment\/t"/);
    await expectNoTopics(server);
  });

  it('reports a bad body with the messageID: ERROR without an acknowledgment subscription', async () => {
    const server = await servers.start();
    // The topic exists, so that a message stored by mistake would have somewhere to go.
    await barrier(server, 't');
    const invalidJson = await RawStompClient.session(server.stompPort);
    invalidJson.send('SEND', { destination: '/producer/publish/t', receipt: 'j1' }, '{"messageID": "x", ');
    await expectError(invalidJson, /^message was not published: body is not valid JSON \(.+\); send a key header to publish a non-JSON body$/, 'j1');
    const wrongShape = await RawStompClient.session(server.stompPort);
    wrongShape.send('SEND', { destination: '/producer/publish/t' }, JSON.stringify({ messageID: 'bad-1', key: { not: 'a string' }, message: 'm' }));
    await expectError(wrongShape, /^message "bad-1" was not published: body does not match \{messageID, key, message, timestamp\}: .*→ at key$/);
    const noMessage = await RawStompClient.session(server.stompPort);
    noMessage.send('SEND', { destination: '/producer/publish/t', receipt: 'm1' }, JSON.stringify({ messageID: 'bad-2', key: 'k' }));
    await expectError(
      noMessage,
      /^message "bad-2" was not published: body does not match \{messageID, key, message, timestamp\}: ✖ message is required\s+→ at message$/,
      'm1',
    );
    const badTime = await RawStompClient.session(server.stompPort);
    badTime.send('SEND', { destination: '/producer/publish/t' }, JSON.stringify({ messageID: 'bad-3', key: 'k', message: 1, timestamp: 'yesterday-ish' }));
    await expectError(badTime, /^message "bad-3" was not published: timestamp "yesterday-ish" is neither epoch milliseconds nor a date$/);
    // Only the two barriers (before and after) are stored.
    await barrier(server, 't');
    expect(await storedCount(httpBase(server.httpPort), 't')).toBe(2);
  });

  it('reports a bad publish as FAILED on the acknowledgment subscription and keeps the connection', async () => {
    const server = await servers.start();
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/t');
    client.publish({ destination: '/producer/publish/t', body: '{"messageID":"broken",' });
    client.publish({ destination: '/producer/publish/t', body: canonical('bad-part', 'k', 'v'), headers: { partition: '99' } });
    await publishWithReceipt(client, '/producer/publish/t', canonical('fine', 'k', 'v'));
    await until('3 acknowledgments', () => acks.length === 3);
    const parsed = acks.map((m) => JSON.parse(m.body));
    expect(parsed[0]).toMatchObject({ status: 'FAILED', messageID: null, topic: 't' });
    expect(parsed[0].reason).toMatch(/not valid JSON/);
    expect(parsed[1]).toMatchObject({ status: 'FAILED', messageID: 'bad-part' });
    expect(parsed[1].reason).toMatch(/partition header "99" is not a partition of topic t \(0 to 3\)/);
    expect(parsed[2]).toMatchObject({ status: 'ACK', messageID: 'fine', partition: expect.any(Number), offset: 0 });
    // Only "fine" was stored (its receipt came after the two failures were handled).
    expect(await storedCount(httpBase(server.httpPort), 't')).toBe(1);
    expect(client.connected).toBe(true);
    expect(client.errors).toEqual([]);
    await client.deactivate();
  });

  it('validates topic names and refuses unknown topics when auto-create is off', async () => {
    const server = await servers.start({ topics: { autoCreate: false, definitions: [{ name: 'known', partitions: 1 }] } });
    const badName = await RawStompClient.session(server.stompPort);
    badName.send('SEND', { destination: '/producer/publish/no spaces!', 'message-id': 'n1', key: 'k' }, 'x');
    await expectError(badName, /invalid topic name "no spaces!"/);
    const unknown = await RawStompClient.session(server.stompPort);
    unknown.send('SEND', { destination: '/producer/publish/unknown', key: 'k' }, 'x');
    await expectError(unknown, /topic "unknown" does not exist and auto-create is off/);
    const fine = await RawStompClient.session(server.stompPort);
    fine.send('SEND', { destination: '/producer/publish/known', key: 'k', receipt: 'ok' }, 'x');
    await fine.receipt('ok');
    fine.close();
    const base = httpBase(server.httpPort);
    expect(await topicOffsets(base, 'unknown')).toBeNull();
    expect(await storedCount(base, 'known')).toBe(1);
  });

  it('checks SUBSCRIBE, UNSUBSCRIBE, ACK and NACK', async () => {
    const server = await servers.start();
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['SUBSCRIBE', { destination: '/topic/t' }, /needs an id header/],
      ['SUBSCRIBE', { id: '1' }, /needs a destination header/],
      ['SUBSCRIBE', { id: '1', destination: '/queue/x' }, /cannot subscribe to "\/queue\/x"/],
      ['SUBSCRIBE', { id: '1', destination: '/topic/t', ack: 'sometimes' }, /ack mode "sometimes"/],
      ['SUBSCRIBE', { id: '1', destination: '/topic/t', from: 'yesterday' }, /invalid from header/],
      ['SUBSCRIBE', { id: '1', destination: '/topic/t', partition: '12' }, /partition header "12"/],
      ['SUBSCRIBE', { id: '1', destination: '/topic/t', 'prefetch-count': '0' }, /invalid prefetch-count/],
      ['UNSUBSCRIBE', { id: 'nope' }, /no subscription with id "nope"/],
      ['ACK', { id: '77.1' }, /ACK for unknown message "77.1"/],
      ['NACK', {}, /needs an id header/],
    ];
    for (const [command, headers, message] of cases) {
      const client = await RawStompClient.session(server.stompPort);
      client.send(command, headers);
      await expectError(client, message);
    }
    const twice = await RawStompClient.session(server.stompPort);
    twice.send('SUBSCRIBE', { id: 'same', destination: '/topic/t' });
    twice.send('SUBSCRIBE', { id: 'same', destination: '/topic/u' });
    await expectError(twice, /subscription id "same" is already in use/);
  });

  it('checks transaction frames', async () => {
    const server = await servers.start({ stomp: { maxTransactionFrames: 2 } });
    const cases: Array<[Array<[string, Record<string, string>]>, RegExp]> = [
      [[['BEGIN', {}]], /BEGIN needs a transaction header/],
      [
        [
          ['BEGIN', { transaction: 'a' }],
          ['BEGIN', { transaction: 'a' }],
        ],
        /transaction "a" is already open/,
      ],
      [[['COMMIT', { transaction: 'zz' }]], /transaction "zz" is not open/],
      [[['ABORT', { transaction: 'zz' }]], /transaction "zz" is not open/],
      [[['SEND', { destination: '/topic/t', transaction: 'zz' }]], /transaction "zz" is not open \(BEGIN it first\)/],
      [
        [
          ['BEGIN', { transaction: 'full' }],
          ['SEND', { destination: '/topic/t', transaction: 'full', key: 'k' }],
          ['SEND', { destination: '/topic/t', transaction: 'full', key: 'k' }],
          ['SEND', { destination: '/topic/t', transaction: 'full', key: 'k' }],
        ],
        /holds more than 2 frames/,
      ],
    ];
    for (const [frames, message] of cases) {
      const client = await RawStompClient.session(server.stompPort);
      for (const [command, headers] of frames) client.send(command, headers, command === 'SEND' ? 'body' : undefined);
      await expectError(client, message);
    }
    // Not one of the SENDs held in those transactions was published.
    await expectOnlyTheBarrier(server, 't');
  });

  it('closes connections past the connection limit with an ERROR', async () => {
    const server = await servers.start({ server: { maxConnections: 2 } });
    const first = await RawStompClient.session(server.stompPort);
    const second = await RawStompClient.session(server.stompPort);
    const third = await RawStompClient.connect(server.stompPort);
    await expectError(third, /limit of 2 connections/);
    first.close();
    second.close();
  });

  it('disconnects a client that stops sending heart-beats, and sends its own', async () => {
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 100, receiveMs: 100, grace: 1.5 } } });
    const client = await RawStompClient.connect(server.stompPort);
    // Timed from before CONNECT: the server cannot start counting the silence any earlier.
    const started = Date.now();
    client.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': '100,100' });
    const connected = await client.next('CONNECTED');
    expect(connected.headers['heart-beat']).toBe('100,100');
    await client.closedByServer();
    // Not before the negotiated 100 ms times the grace of 1.5 (less 5 ms for timer rounding);
    // no upper bound: on a loaded machine the close can come late, and that is not the point here.
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
    const bytes = Buffer.concat(client.received).toString();
    expect(bytes.slice(bytes.indexOf('\0') + 1)).toMatch(/^\n+$/);
  });

  it('keeps a client that sends heart-beats', async () => {
    // 500 ms times 1.5: a silence of 750 ms gets a client disconnected. The beating client beats
    // every 50 ms, so only a stall of 700 ms of this process could make it miss.
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 0, receiveMs: 500, grace: 1.5 } } });
    const connect = async (): Promise<RawStompClient> => {
      const client = await RawStompClient.connect(server.stompPort);
      client.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': '500,0' });
      await client.next('CONNECTED');
      return client;
    };
    const beating = await connect();
    const beat = setInterval(() => beating.write('\n'), 50);
    try {
      // The barrier: silent clients that connected after the beating one, each disconnected by
      // the server; so the beating client has lived through two whole silence timeouts.
      for (let i = 0; i < 2; i++) {
        const silent = await connect();
        await silent.closedByServer();
      }
      expect(beating.closed).toBe(false);
      // And the server still serves it.
      beating.send('SUBSCRIBE', { id: 's', destination: '/topic/t', receipt: 'alive' });
      await beating.receipt('alive');
    } finally {
      clearInterval(beat);
    }
    beating.close();
  });

  it('closes a connection that never sends CONNECT', async () => {
    const server = await servers.start({ stomp: { connectTimeoutMs: 200 } });
    const client = await RawStompClient.connect(server.stompPort);
    await expectError(client, /no CONNECT frame within 200 ms/);
  });
});
