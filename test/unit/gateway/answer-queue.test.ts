import { describe, expect, it } from 'vitest';
import { RillError } from '../../../src/errors/index.js';
import { AnswerQueue } from '../../../src/gateway/stomp/answer-queue.js';
import { ReadGate } from '../../../src/gateway/stomp/read-gate.js';

/** A queue whose writer records what it writes, as `RECEIPT r`, `ERROR code r` and `CLOSE r`. */
function recorded(): { queue: AnswerQueue; written: string[] } {
  const written: string[] = [];
  const queue = new AnswerQueue({
    receipt: (receipt) => written.push(`RECEIPT ${receipt}`),
    error: (error, receipt) => written.push(`ERROR ${error.code} ${receipt}`),
    close: (receipt) => written.push(`CLOSE ${receipt}`),
  });
  return { queue, written };
}

describe('AnswerQueue', () => {
  it('writes a receipt due at once at once when nothing waits, and takes no place for it', () => {
    const { queue, written } = recorded();
    queue.next();
    queue.receipt('a');
    queue.next();
    queue.receipt(undefined);
    expect(written).toEqual(['RECEIPT a']);
    expect(queue.waiting).toBe(0);
  });

  it('holds an answer ready early until every earlier answer is written', () => {
    const { queue, written } = recorded();
    const places: number[] = [];
    for (const receipt of ['s1', 's2', 's3', 's4']) {
      queue.next();
      places.push(queue.reserve(receipt));
    }
    queue.ready(places[3]!);
    queue.ready(places[1]!);
    expect(written).toEqual([]);
    queue.ready(places[0]!);
    expect(written).toEqual(['RECEIPT s1', 'RECEIPT s2']);
    queue.ready(places[2]!);
    expect(written).toEqual(['RECEIPT s1', 'RECEIPT s2', 'RECEIPT s3', 'RECEIPT s4']);
    expect(queue.waiting).toBe(0);
  });

  it('puts a receipt due at once behind the answers still waiting', () => {
    const { queue, written } = recorded();
    queue.next();
    const send = queue.reserve('send');
    queue.next();
    queue.receipt('begin');
    expect(written).toEqual([]);
    queue.ready(send);
    expect(written).toEqual(['RECEIPT send', 'RECEIPT begin']);
  });

  it('costs a frame that asks for nothing no place, and ignores answering it', () => {
    const { queue, written } = recorded();
    queue.next();
    const place = queue.reserve(undefined);
    expect(place).toBe(1);
    expect(queue.waiting).toBe(0);
    queue.ready(place);
    queue.ready(place + 10);
    expect(written).toEqual([]);
  });

  it('answers a place once: the first answer stands', () => {
    const { queue, written } = recorded();
    queue.next();
    const first = queue.reserve('first');
    queue.next();
    const second = queue.reserve('second');
    queue.ready(second);
    queue.fail(second, new RillError('storage-error', 'too late'));
    queue.ready(second);
    queue.ready(first);
    expect(written).toEqual(['RECEIPT first', 'RECEIPT second']);
  });

  it('sends an ERROR after the answers of earlier frames, then nothing more', () => {
    const { queue, written } = recorded();
    queue.next();
    const send = queue.reserve('send-1');
    queue.next();
    const later = queue.reserve('send-3');
    queue.next();
    // A frame caused an ERROR while earlier answers wait: it goes after them.
    queue.fail(queue.current, new RillError('invalid-request', 'bad frame'), 'bad');
    queue.ready(later);
    expect(written).toEqual([]);
    queue.ready(send);
    expect(written).toEqual(['RECEIPT send-1', 'RECEIPT send-3', 'ERROR invalid-request bad']);
    queue.next();
    queue.receipt('after');
    queue.ready(send);
    expect(written).toHaveLength(3);
    expect(queue.waiting).toBe(0);
  });

  it('puts the ERROR of a frame that kept no place where the frame was read, dropping later answers', () => {
    const { queue, written } = recorded();
    queue.next();
    const first = queue.reserve('r1');
    queue.next();
    const unreceipted = queue.reserve(undefined);
    queue.next();
    const third = queue.reserve('r3');
    queue.ready(third);
    queue.fail(unreceipted, new RillError('storage-error', 'disk'));
    expect(written).toEqual([]);
    queue.ready(first);
    expect(written).toEqual(['RECEIPT r1', 'ERROR storage-error null']);
  });

  it('writes an ERROR at once when it is for a frame earlier than every waiting answer', () => {
    const { queue, written } = recorded();
    queue.next();
    const early = queue.reserve(null);
    queue.next();
    queue.reserve('r2');
    queue.fail(early, new RillError('unavailable', 'worker restarted'));
    expect(written).toEqual(['ERROR unavailable null']);
  });

  it('gives a reserved place that fails its own receipt-id', () => {
    const { queue, written } = recorded();
    queue.next();
    const place = queue.reserve('sub-1');
    queue.fail(place, new RillError('unavailable', 'no offsets'), 'ignored');
    expect(written).toEqual(['ERROR unavailable sub-1']);
  });

  it('closes in DISCONNECT turn, once it is ready, after earlier answers', () => {
    const { queue, written } = recorded();
    queue.next();
    const send = queue.reserve('s');
    queue.next();
    const close = queue.reserveClose('bye');
    queue.ready(close);
    expect(written).toEqual([]);
    queue.ready(send);
    expect(written).toEqual(['RECEIPT s', 'CLOSE bye']);
    const { queue: quiet, written: quietWritten } = recorded();
    quiet.next();
    quiet.ready(quiet.reserveClose(undefined));
    expect(quietWritten).toEqual(['CLOSE null']);
  });

  it('keeps order through growth and wrap-around of its ring', () => {
    const { queue, written } = recorded();
    const expected: string[] = [];
    let pending: number[] = [];
    // Rounds of reservations answered in reverse, so that the ring wraps and grows while non-empty.
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < round * 7 + 3; i++) {
        queue.next();
        const receipt = `r${round}-${i}`;
        pending.push(queue.reserve(receipt));
        expected.push(`RECEIPT ${receipt}`);
      }
      const keep = pending.slice(0, 2);
      for (const place of pending.slice(2).reverse()) queue.ready(place);
      pending = keep;
      if (round % 3 === 0) {
        for (const place of pending.reverse()) queue.ready(place);
        pending = [];
      }
    }
    for (const place of pending.reverse()) queue.ready(place);
    expect(written).toEqual(expected);
    expect(queue.waiting).toBe(0);
  });

  it('inserts an ERROR in order in a wrapped ring', () => {
    const { queue, written } = recorded();
    // Twelve places, ten answered: the head moves round the ring of 16 while two still wait.
    const warm: number[] = [];
    for (let i = 0; i < 12; i++) {
      queue.next();
      warm.push(queue.reserve(`w${i}`));
    }
    for (const place of warm.slice(0, 10)) queue.ready(place);
    written.length = 0;
    const places: number[] = [];
    for (let i = 0; i < 10; i++) {
      queue.next();
      places.push(queue.reserve(i % 2 === 0 ? `r${i}` : undefined));
    }
    for (const place of places) queue.ready(place);
    queue.ready(warm[11]!);
    queue.fail(places[5]!, new RillError('storage-error', 'disk'));
    expect(written).toEqual([]);
    queue.ready(warm[10]!);
    expect(written).toEqual(['RECEIPT w10', 'RECEIPT w11', 'RECEIPT r0', 'RECEIPT r2', 'RECEIPT r4', 'ERROR storage-error null']);
  });

  it('grows past thousands of waiting answers, keeps their order, and shrinks back once empty', () => {
    const { queue, written } = recorded();
    const places: number[] = [];
    for (let i = 0; i < 5000; i++) {
      queue.next();
      places.push(queue.reserve(`r${i}`));
    }
    for (const place of places.slice(1).reverse()) queue.ready(place);
    expect(written).toEqual([]);
    queue.ready(places[0]!);
    expect(written).toEqual(places.map((_, i) => `RECEIPT r${i}`));
    queue.next();
    const next = queue.reserve('again');
    queue.ready(next);
    expect(written.at(-1)).toBe('RECEIPT again');
  });

  it('drops everything once discarded', () => {
    const { queue, written } = recorded();
    queue.next();
    const place = queue.reserve('r');
    queue.discard();
    queue.ready(place);
    queue.receipt('x');
    queue.fail(place, new RillError('internal', 'x'));
    expect(written).toEqual([]);
  });
});

// The session's other small piece of flow control, beside its answers (kept here with them).
describe('ReadGate', () => {
  function gate(): { gate: ReadGate; calls: string[] } {
    const calls: string[] = [];
    return { gate: new ReadGate({ pauseReading: () => calls.push('pause'), resumeReading: () => calls.push('resume') }), calls };
  }

  it('reads again only when neither storage nor the backlog holds it', () => {
    const { gate: reads, calls } = gate();
    reads.pause('backlog');
    reads.pause('storage');
    expect(calls).toEqual(['pause']);
    expect(reads.reasons()).toEqual(['storage', 'backlog']);
    // Storage caught up: the gateway's resume does not override the connection's own backlog.
    reads.resume('storage');
    expect(calls).toEqual(['pause']);
    expect(reads.paused).toBe(true);
    reads.pause('storage');
    // The socket drained: storage is behind again, so reading stays paused.
    reads.resume('backlog');
    expect(calls).toEqual(['pause']);
    expect(reads.reasons()).toEqual(['storage']);
    reads.resume('storage');
    expect(calls).toEqual(['pause', 'resume']);
    expect(reads.paused).toBe(false);
  });

  it('ignores a resume for a reason that does not hold, and a pause for one that already does', () => {
    const { gate: reads, calls } = gate();
    reads.resume('backlog');
    reads.pause('storage');
    reads.pause('storage');
    reads.resume('backlog');
    expect(calls).toEqual(['pause']);
    expect(reads.backlogged).toBe(false);
  });

  it('stays open once the connection is closing, so that its end is read', () => {
    const { gate: reads, calls } = gate();
    reads.pause('backlog');
    reads.close();
    reads.pause('storage');
    reads.pause('backlog');
    expect(calls).toEqual(['pause', 'resume']);
    expect(reads.paused).toBe(false);
  });
});
