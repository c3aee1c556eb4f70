import { describe, expect, it } from 'vitest';
import { canonical, collect, connectStompJs, publishWithReceipt, RawStompClient, waitFor } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

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
    await waitFor(() => acks[0]);
    await bystander.deactivate();
  });

  it('refuses a frame larger than the limit, naming the limit and the receipt', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 4096 } });
    const client = await RawStompClient.session(server.stompPort);
    client.send('SEND', { destination: '/producer/publish/t', receipt: 'big-1' }, 'x'.repeat(10_000));
    await expectError(client, /exceeds the limit of 4096/, 'big-1');
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
  });

  it('refuses an undefined escape and a header without a colon', async () => {
    const server = await servers.start();
    const escape = await RawStompClient.session(server.stompPort);
    escape.write('SEND\ndestination:/topic/a\\tb\n\nx\0');
    await expectError(escape, /undefined escape sequence/);
    const colon = await RawStompClient.session(server.stompPort);
    colon.write('SEND\nreceipt:r9\nno-colon-here\n\nx\0');
    await expectError(colon, /no colon/, 'r9');
  });

  it('requires CONNECT first and refuses a second CONNECT', async () => {
    const server = await servers.start();
    const early = await RawStompClient.connect(server.stompPort);
    early.send('SEND', { destination: '/topic/t' }, 'x');
    await expectError(early, /expected CONNECT or STOMP/);
    const twice = await RawStompClient.session(server.stompPort);
    twice.send('CONNECT', { 'accept-version': '1.2' });
    await expectError(twice, /already connected/);
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
    ack.send('SEND', { destination: '/topic/acknowledgment/t' }, 'x');
    await expectError(ack, /cannot publish to/);
  });

  it('reports a bad body with the messageID: ERROR without an acknowledgment subscription', async () => {
    const server = await servers.start();
    const invalidJson = await RawStompClient.session(server.stompPort);
    invalidJson.send('SEND', { destination: '/producer/publish/t', receipt: 'j1' }, '{"messageID": "x", ');
    await expectError(invalidJson, /not valid JSON/, 'j1');
    const wrongShape = await RawStompClient.session(server.stompPort);
    wrongShape.send('SEND', { destination: '/producer/publish/t' }, JSON.stringify({ messageID: 'bad-1', key: { not: 'a string' }, message: 'm' }));
    await expectError(wrongShape, /message "bad-1" was not published: body does not match/);
    const noMessage = await RawStompClient.session(server.stompPort);
    noMessage.send('SEND', { destination: '/producer/publish/t' }, JSON.stringify({ messageID: 'bad-2', key: 'k' }));
    await expectError(noMessage, /message is required|message/);
    const badTime = await RawStompClient.session(server.stompPort);
    badTime.send('SEND', { destination: '/producer/publish/t' }, JSON.stringify({ messageID: 'bad-3', key: 'k', message: 1, timestamp: 'yesterday-ish' }));
    await expectError(badTime, /timestamp "yesterday-ish"/);
  });

  it('reports a bad publish as FAILED on the acknowledgment subscription and keeps the connection', async () => {
    const server = await servers.start();
    const client = await connectStompJs(server.wsUrl);
    const acks = collect(client, '/topic/acknowledgment/t');
    client.publish({ destination: '/producer/publish/t', body: '{"messageID":"broken",' });
    client.publish({ destination: '/producer/publish/t', body: canonical('bad-part', 'k', 'v'), headers: { partition: '99' } });
    await publishWithReceipt(client, '/producer/publish/t', canonical('fine', 'k', 'v'));
    await waitFor(() => acks.length === 3 || undefined);
    const parsed = acks.map((m) => JSON.parse(m.body));
    expect(parsed[0]).toMatchObject({ status: 'FAILED', messageID: null, topic: 't' });
    expect(parsed[0].reason).toMatch(/not valid JSON/);
    expect(parsed[1]).toMatchObject({ status: 'FAILED', messageID: 'bad-part' });
    expect(parsed[1].reason).toMatch(/partition header "99" is not a partition of topic t \(0 to 3\)/);
    expect(parsed[2]).toMatchObject({ status: 'ACK', messageID: 'fine' });
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
    expect((await fine.next('RECEIPT')).headers['receipt-id']).toBe('ok');
    fine.close();
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
      [[['BEGIN', { transaction: 'a' }], ['BEGIN', { transaction: 'a' }]], /transaction "a" is already open/],
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
    client.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': '100,100' });
    const connected = await client.next('CONNECTED');
    expect(connected.headers['heart-beat']).toBe('100,100');
    const started = Date.now();
    await client.closedByServer(3000);
    const silentFor = Date.now() - started;
    expect(silentFor).toBeGreaterThanOrEqual(140);
    const bytes = Buffer.concat(client.received).toString();
    expect(bytes.slice(bytes.indexOf('\0') + 1)).toMatch(/^\n+$/);
  });

  it('keeps a client that sends heart-beats', async () => {
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 0, receiveMs: 100, grace: 1.5 } } });
    const client = await RawStompClient.connect(server.stompPort);
    client.send('CONNECT', { 'accept-version': '1.2', 'heart-beat': '100,0' });
    await client.next('CONNECTED');
    const beat = setInterval(() => client.write('\n'), 50);
    await new Promise((r) => setTimeout(r, 600));
    clearInterval(beat);
    expect(client.closed).toBe(false);
    client.close();
  });

  it('closes a connection that never sends CONNECT', async () => {
    const server = await servers.start({ stomp: { connectTimeoutMs: 200 } });
    const client = await RawStompClient.connect(server.stompPort);
    await expectError(client, /no CONNECT frame within 200 ms/);
  });
});
