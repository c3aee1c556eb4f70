import { describe, expect, it } from 'vitest';
import { partitionForKey } from '../../../src/broker/index.js';
import { RillError } from '../../../src/errors/index.js';
import { handleAck } from '../../../src/gateway/stomp/commands/ack.js';
import { handleConnect } from '../../../src/gateway/stomp/commands/connect.js';
import { handleDisconnect } from '../../../src/gateway/stomp/commands/disconnect.js';
import { handleSend } from '../../../src/gateway/stomp/commands/send.js';
import { handleSubscribe, handleUnsubscribe } from '../../../src/gateway/stomp/commands/subscribe.js';
import { handleAbort, handleBegin, handleCommit } from '../../../src/gateway/stomp/commands/transaction.js';
import { FakeContext, frame } from './fake-context.js';

const canonical = (messageID: string, key: string | null, message: unknown = 'hello'): string =>
  JSON.stringify({ messageID, key, message, timestamp: 1_700_000_000_000 });

/** The refusal a handler made: thrown (the session answers it with an ERROR) or passed to fail(). */
function refusal(context: FakeContext, run: () => void): RillError | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof RillError) return error;
    throw error;
  }
  return context.failure?.error;
}

function thrown(run: () => void): RillError {
  try {
    run();
  } catch (error) {
    if (error instanceof RillError) return error;
    throw error;
  }
  throw new Error('expected a RillError');
}

describe('CONNECT', () => {
  it('picks the highest common version and the larger heart-beat interval each way', () => {
    const context = new FakeContext();
    context.isConnected = false;
    handleConnect(context, frame('CONNECT', { 'accept-version': '1.0,1.1,1.2', 'heart-beat': '5000,20000' }));
    expect(context.failure).toBeNull();
    // Server defaults: send every 10 s, want one every 10 s.
    expect(context.connection).toEqual({
      version: '1.2',
      headers: { version: '1.2', server: 'rill/test', session: 'test-session', 'heart-beat': '10000,10000' },
      outgoingMs: 20_000,
      incomingMs: 10_000,
    });
  });

  it('negotiates no heart-beats on STOMP 1.0, and 1.0 when no version is offered', () => {
    const context = new FakeContext();
    context.isConnected = false;
    handleConnect(context, frame('CONNECT', { 'heart-beat': '1000,1000' }));
    expect(context.connection).toMatchObject({ version: '1.0', outgoingMs: 0, incomingMs: 0 });
  });

  it('clamps a heart-beat interval above stomp.heartbeat.maxMs, or past the safe integers, to maxMs, both ways', () => {
    const connect = (heartBeat: string, heartbeat: Record<string, number> = {}) => {
      const context = new FakeContext({ config: { stomp: { heartbeat: { sendMs: 1000, receiveMs: 1000, ...heartbeat } } } });
      context.isConnected = false;
      handleConnect(context, frame('CONNECT', { 'accept-version': '1.2', 'heart-beat': heartBeat }));
      expect(context.failure).toBeNull();
      return { outgoingMs: context.connection?.outgoingMs, incomingMs: context.connection?.incomingMs };
    };
    // The default maxMs is one hour.
    expect(connect('0,99999999999999999999')).toEqual({ outgoingMs: 3_600_000, incomingMs: 0 });
    expect(connect('3000000000,0')).toEqual({ outgoingMs: 0, incomingMs: 3_600_000 });
    expect(connect('9007199254740993,9007199254740992')).toEqual({ outgoingMs: 3_600_000, incomingMs: 3_600_000 });
    expect(connect(`${'9'.repeat(400)},${'9'.repeat(400)}`)).toEqual({ outgoingMs: 3_600_000, incomingMs: 3_600_000 });
    // At the bound, and under it, the client's numbers stand; the configured bound is the one used.
    expect(connect('3600000,3600000')).toEqual({ outgoingMs: 3_600_000, incomingMs: 3_600_000 });
    expect(connect('5001,5002', { maxMs: 5000 })).toEqual({ outgoingMs: 5000, incomingMs: 5000 });
    expect(connect('4999,4998', { maxMs: 5000 })).toEqual({ outgoingMs: 4998, incomingMs: 4999 });
    // Leading zeros are still the same number, and 0 still means "none".
    expect(connect('0002000,0')).toEqual({ outgoingMs: 0, incomingMs: 2000 });
  });

  it('refuses a client with no version in common, listing the versions it speaks', () => {
    const context = new FakeContext();
    context.isConnected = false;
    handleConnect(context, frame('CONNECT', { 'accept-version': '2.0', receipt: 'r' }));
    expect(context.connection).toBeNull();
    expect(context.failure?.error.code).toBe('unsupported-version');
    expect(context.failure?.details?.headers).toEqual({ version: '1.0,1.1,1.2' });
    expect(context.failure?.receipt).toBe('r');
  });

  it('refuses a malformed heart-beat header and a second CONNECT', () => {
    const bad = new FakeContext();
    bad.isConnected = false;
    handleConnect(bad, frame('CONNECT', { 'accept-version': '1.2', 'heart-beat': 'often' }));
    expect(bad.failure?.error.code).toBe('invalid-request');
    expect(bad.failure?.error.message).toContain('heart-beat');

    const again = new FakeContext();
    handleConnect(again, frame('CONNECT', { 'accept-version': '1.2' }));
    expect(again.failure?.error.code).toBe('unexpected-frame');
    expect(again.connection).toBeNull();
  });
});

describe('SEND', () => {
  it('publishes a canonical body to the partition its key hashes to, with its messageID', () => {
    const context = new FakeContext();
    handleSend(context, frame('SEND', { destination: '/producer/publish/orders', receipt: 'r1' }, canonical('m-1', 'customer-7')));
    expect(context.failure).toBeNull();
    expect(context.published).toHaveLength(1);
    const [{ request, receipt }] = context.published as [(typeof context.published)[number]];
    expect(receipt).toBe('r1');
    expect(request).toMatchObject({ partition: partitionForKey('customer-7', 4), key: 'customer-7', messageId: 'm-1', timestamp: 1_700_000_000_000 });
    expect(request.topic.name).toBe('orders');
  });

  it('keeps the keyless messages of one turn on one partition (sticky) and names a message that has no messageID', () => {
    const context = new FakeContext();
    for (let i = 0; i < 4; i++) handleSend(context, frame('SEND', { destination: '/topic/orders' }, JSON.stringify({ message: i })));
    expect(context.published.map((p) => p.request.partition)).toEqual([0, 0, 0, 0]);
    expect(context.published.map((p) => p.request.messageId)).toEqual(['test-session-1', 'test-session-2', 'test-session-3', 'test-session-4']);
  });

  it('answers an unpublishable SEND with an ERROR naming the message, and publishes nothing', () => {
    const cases: Array<[Record<string, string>, string, string, RegExp]> = [
      [{ destination: '/topic/orders' }, '{not json', 'invalid-message', /body is not valid JSON/],
      [
        { destination: '/topic/orders' },
        JSON.stringify({ messageID: 'm-2', key: 'k' }),
        'invalid-message',
        /message "m-2" was not published: body does not match .*message/,
      ],
      [
        { destination: '/topic/orders', partition: '9', key: 'k' },
        'raw',
        'invalid-message',
        /partition header "9" is not a partition of topic orders \(0 to 3\)/,
      ],
      [{ destination: '/topic/orders', key: 'k', timestamp: 'yesterday' }, 'raw', 'invalid-message', /timestamp "yesterday"/],
      [{}, 'raw', 'invalid-request', /SEND needs a destination header/],
      [{ destination: '/group/g/orders' }, 'raw', 'invalid-destination', /cannot publish to "\/group\/g\/orders"/],
      // Internal topics are beyond every client's rights, whatever the rules say.
      [{ destination: '/topic/__consumer_offsets', key: 'k' }, 'raw', 'forbidden', /may not produce topic "__consumer_offsets"/],
    ];
    for (const [headers, body, code, message] of cases) {
      const context = new FakeContext();
      handleSend(context, frame('SEND', { ...headers, receipt: 'r' }, body));
      expect(context.failure?.error.code, JSON.stringify(headers)).toBe(code);
      expect(context.failure?.error.message).toMatch(message);
      expect(context.failure?.receipt).toBe('r');
      expect(context.published).toEqual([]);
    }
  });

  it("reads every shape of canonical body the schema allows, and refuses the rest with the schema's reason", () => {
    // The common shape (string messageID and key, numeric timestamp) is checked by hand; anything
    // else goes to the zod schema: both must give the same message, or the same refusal.
    const accepted: Array<[unknown, { messageId: string; key: string | null; timestamp: number }]> = [
      [
        { messageID: 'a', key: 'k', message: 1, timestamp: 5 },
        { messageId: 'a', key: 'k', timestamp: 5 },
      ],
      [
        { messageID: 42, key: 7, message: 'x', timestamp: '6' },
        { messageId: '42', key: '7', timestamp: 6 },
      ],
      [
        { messageID: 'b', key: null, message: null, timestamp: 7, extra: true },
        { messageId: 'b', key: null, timestamp: 7 },
      ],
      [
        { messageID: 'c', message: { nested: [1] }, timestamp: '1970-01-01T00:00:00.008Z' },
        { messageId: 'c', key: null, timestamp: 8 },
      ],
      [
        { messageID: 'x'.repeat(1024), key: 'k'.repeat(32 * 1024), message: false, timestamp: 9 },
        { messageId: 'x'.repeat(1024), key: 'k'.repeat(32 * 1024), timestamp: 9 },
      ],
    ];
    for (const [body, expected] of accepted) {
      const context = new FakeContext();
      handleSend(context, frame('SEND', { destination: '/topic/orders' }, JSON.stringify(body)));
      expect(context.failure, JSON.stringify(body).slice(0, 80)).toBeNull();
      expect(context.published[0]?.request).toMatchObject(expected);
    }
    const refused: Array<[unknown, RegExp]> = [
      [{ messageID: '', key: 'k', message: 1 }, /messageID/],
      [{ messageID: 'x'.repeat(1025), key: 'k', message: 1 }, /messageID/],
      [{ messageID: 'd', key: 'k'.repeat(32 * 1024 + 1), message: 1 }, /key/],
      [{ messageID: 'e', key: ['k'], message: 1 }, /key/],
      [{ messageID: 'f', key: 'k', message: 1, timestamp: true }, /timestamp/],
      [{ messageID: { id: 1 }, key: 'k', message: 1 }, /messageID/],
      [{ messageID: 'g', key: 'k' }, /message/],
    ];
    for (const [body, reason] of refused) {
      const context = new FakeContext();
      handleSend(context, frame('SEND', { destination: '/topic/orders' }, JSON.stringify(body)));
      expect(context.failure?.error.code, JSON.stringify(body).slice(0, 80)).toBe('invalid-message');
      expect(context.failure?.error.message).toMatch(/body does not match/);
      expect(context.failure?.error.message).toMatch(reason);
      expect(context.published).toEqual([]);
    }
  });

  it('refuses an unknown topic when auto-create is off', () => {
    const context = new FakeContext({ autoCreate: false });
    handleSend(context, frame('SEND', { destination: '/topic/payments', key: 'k' }, 'raw'));
    expect(context.failure?.error.code).toBe('unknown-topic');
    expect(context.failure?.error.message).toContain('auto-create is off');
    expect(context.published).toEqual([]);
  });

  it('with an acknowledgment subscription, reports a bad SEND as FAILED and keeps the connection', () => {
    const context = new FakeContext();
    handleSubscribe(context, frame('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders' }));
    handleSend(context, frame('SEND', { destination: '/topic/orders', receipt: 'r' }, JSON.stringify({ messageID: 'm-3', key: 'k' })));
    expect(context.failure).toBeNull();
    expect(context.receipts).toEqual(['r']);
    expect(context.published).toEqual([]);
    const ack = context.frames.find((f) => f.command === 'MESSAGE');
    expect(JSON.parse(ack!.body)).toMatchObject({ messageID: 'm-3', status: 'FAILED', topic: 'orders', code: 'invalid-message', retriable: false });
  });
});

describe('transactions', () => {
  it('holds SENDs until COMMIT, then publishes them all under one receipt countdown', () => {
    const context = new FakeContext();
    handleBegin(context, frame('BEGIN', { transaction: 't', receipt: 'b' }));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('a', 'k1')));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('b', 'k2')));
    expect(context.published).toEqual([]);
    handleCommit(context, frame('COMMIT', { transaction: 't', receipt: 'c' }));
    expect(context.published.map((p) => p.request.messageId)).toEqual(['a', 'b']);
    const countdown = context.published[0]!.countdown;
    expect(countdown).toMatchObject({ remaining: 2, receipt: 'c' });
    expect(context.published[1]!.countdown).toBe(countdown);
    expect(context.receipts).toEqual(['b']);
  });

  it('publishes nothing when one message of the transaction is bad', () => {
    const context = new FakeContext();
    handleBegin(context, frame('BEGIN', { transaction: 't' }));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('a', 'k1')));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, JSON.stringify({ messageID: 'bad' })));
    handleCommit(context, frame('COMMIT', { transaction: 't', receipt: 'c' }));
    expect(context.published).toEqual([]);
    expect(context.failure?.error.code).toBe('invalid-message');
    expect(context.failure?.error.message).toMatch(/transaction "t" was not committed, nothing was published: message "bad"/);
  });

  it('ABORT discards, and misuse is refused with its code', () => {
    const context = new FakeContext();
    handleBegin(context, frame('BEGIN', { transaction: 't' }));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('a', 'k1')));
    handleAbort(context, frame('ABORT', { transaction: 't', receipt: 'x' }));
    expect(context.receipts).toEqual(['x']);
    expect(thrown(() => handleCommit(context, frame('COMMIT', { transaction: 't' }))).code).toBe('unknown-transaction');
    expect(context.published).toEqual([]);
    handleBegin(context, frame('BEGIN', { transaction: 'u' }));
    expect(thrown(() => handleBegin(context, frame('BEGIN', { transaction: 'u' }))).code).toBe('name-taken');
    expect(thrown(() => handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 'nope' }, 'x'))).code).toBe('unknown-transaction');
    handleBegin(context, frame('BEGIN', {}));
    expect(context.failure?.error.code).toBe('invalid-request');
  });

  it('refuses a transaction over stomp.maxTransactionFrames', () => {
    const context = new FakeContext({ config: { stomp: { maxTransactionFrames: 2 } } });
    handleBegin(context, frame('BEGIN', { transaction: 't' }));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('a', 'k')));
    handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('b', 'k')));
    expect(thrown(() => handleSend(context, frame('SEND', { destination: '/topic/orders', transaction: 't' }, canonical('c', 'k')))).code).toBe('too-large');
  });
});

describe('SUBSCRIBE, UNSUBSCRIBE, ACK', () => {
  it('refuses what a subscription needs and does not have', () => {
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ destination: '/topic/orders' }, 'invalid-request', /SUBSCRIBE needs an id header/],
      [{ id: 's' }, 'invalid-request', /needs a destination header/],
      [{ id: 's', destination: '/topic/orders', ack: 'sometimes' }, 'invalid-request', /ack mode "sometimes"/],
      [{ id: 's', destination: '/producer/publish/orders' }, 'invalid-destination', /cannot subscribe to "\/producer\/publish\/orders"/],
      [{ id: 's', destination: '/topic/orders', 'prefetch-count': '0' }, 'invalid-request', /invalid prefetch-count "0"/],
      [{ id: 's', destination: '/topic/orders', from: 'tomorrow' }, 'invalid-request', /invalid from header "tomorrow"/],
      [{ id: 's', destination: '/topic/orders', partition: '4' }, 'invalid-request', /partition header "4" is not a partition of topic orders/],
      [{ id: 's', destination: '/topic/__consumer_offsets' }, 'forbidden', /may not consume topic "__consumer_offsets"/],
    ];
    for (const [headers, code, message] of cases) {
      const context = new FakeContext();
      const error = refusal(context, () => handleSubscribe(context, frame('SUBSCRIBE', { ...headers, receipt: 'r' })));
      expect(error?.code, JSON.stringify(headers)).toBe(code);
      expect(error?.message).toMatch(message);
      expect(context.subscriptions.has('s')).toBe(false);
    }
  });

  it('registers an acknowledgment subscription, refuses its id twice, and forgets it on UNSUBSCRIBE', () => {
    const context = new FakeContext();
    handleSubscribe(context, frame('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/orders', receipt: 'r1' }));
    expect(context.receipts).toEqual(['r1']);
    expect(context.subscriptions.acknowledgments('orders')).toBeDefined();
    expect(thrown(() => handleSubscribe(context, frame('SUBSCRIBE', { id: 'acks', destination: '/user/replies' }))).code).toBe('name-taken');
    handleUnsubscribe(context, frame('UNSUBSCRIBE', { id: 'acks', receipt: 'r2' }));
    expect(context.receipts).toEqual(['r1', 'r2']);
    expect(context.subscriptions.acknowledgments('orders')).toBeUndefined();
    expect(thrown(() => handleUnsubscribe(context, frame('UNSUBSCRIBE', { id: 'acks' }))).code).toBe('unknown-subscription');
  });

  it('keeps a subscription id taken while its group join is still pending', () => {
    const context = new FakeContext({ coordinator: { connect: () => new Promise(() => {}) } });
    handleSubscribe(context, frame('SUBSCRIBE', { id: 'g', destination: '/group/billing/orders', ack: 'client-individual' }));
    expect(context.failure).toBeNull();
    expect(thrown(() => handleSubscribe(context, frame('SUBSCRIBE', { id: 'g', destination: '/group/billing/orders' }))).code).toBe('name-taken');
  });

  it('refuses an ACK without its header or for a message never handed out', () => {
    const missing = new FakeContext();
    handleAck(missing, frame('ACK', {}));
    expect(missing.failure?.error.code).toBe('invalid-request');
    expect(missing.failure?.error.message).toBe('ACK needs an id header');

    const unknown = new FakeContext();
    handleSubscribe(unknown, frame('SUBSCRIBE', { id: 'replies', destination: '/user/replies', ack: 'client' }));
    handleAck(unknown, frame('ACK', { id: '1.5', receipt: 'r' }));
    expect(unknown.failure?.error.code).toBe('unknown-message');
    expect(unknown.failure?.receipt).toBe('r');
  });
});

describe('DISCONNECT', () => {
  it('hands its receipt to the session (test/integration/tcp-and-tail.test.ts checks that it waits for publishes in flight)', () => {
    const context = new FakeContext();
    handleDisconnect(context, frame('DISCONNECT', { receipt: 'bye' }));
    expect(context.disconnected).toBe('bye');
  });
});
