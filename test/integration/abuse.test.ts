import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ConnectionView } from '../../src/gateway/stomp/session.js';
import { encodeFrame, FrameParser, type Frame } from '../../src/protocol/stomp/index.js';
import { RawStompClient, until } from '../helpers/clients.js';
import { httpBase, storedCount } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * A small SEND (about 80 bytes): its answers (a RECEIPT and an acknowledgment, about 250 bytes)
 * outweigh it, as they did for the producer in the report.
 */
function sendFrame(topic: string, i: number): string {
  return `SEND\ndestination:/producer/publish/${topic}\nreceipt:r${i}\n\n{"messageID":"m${i}","message":0}\0`;
}

/**
 * What a producer hears back, checked as it arrives and not kept (the test process also runs the
 * server, whose memory is measured): RECEIPTs must come in frame order (r0, r1, ...), each
 * partition's acknowledgments in offset order, for messages in the order they were written.
 */
class Answers {
  receipts = 0;
  acks = 0;
  readonly problems: string[] = [];
  readonly errors: Frame[] = [];
  subscribed = false;
  private readonly nextOffset = new Map<number, number>();
  private readonly lastMessage = new Map<number, number>();
  readonly parser = new FrameParser((frame) => this.onFrame(frame), { maxFrameBytes: 1 << 20, maxHeaders: 100, maxHeaderBytes: 1 << 16 });

  private problem(text: string): void {
    if (this.problems.length < 10) this.problems.push(text);
  }

  private onFrame(frame: Frame): void {
    if (frame.command === 'RECEIPT') {
      const id = frame.headers['receipt-id'];
      if (id === 'acks') this.subscribed = true;
      else if (id !== `r${this.receipts++}`) this.problem(`RECEIPT ${id} where r${this.receipts - 1} was due`);
    } else if (frame.command === 'MESSAGE') {
      const ack = JSON.parse(frame.body.toString()) as { status: string; messageID: string; partition: number; offset: number };
      this.acks++;
      const message = Number(ack.messageID.slice(1));
      const expectedOffset = this.nextOffset.get(ack.partition) ?? 0;
      if (ack.status !== 'ACK' || ack.offset !== expectedOffset || message <= (this.lastMessage.get(ack.partition) ?? -1)) {
        this.problem(`acknowledgment ${JSON.stringify(ack)} where offset ${expectedOffset} was due`);
      }
      this.nextOffset.set(ack.partition, ack.offset + 1);
      this.lastMessage.set(ack.partition, message);
    } else if (frame.command === 'ERROR') this.errors.push(frame);
  }
}

/** The server's view of the connection subscribed to acknowledgments as `acks` (the producer's). */
function producerView(server: TestServer): ConnectionView | undefined {
  return server.gateway.connections().find((c) => c.subscriptions.includes('acks'));
}

/**
 * The server stopped reading from the producer and waits for it alone: reading is paused for its
 * backlog while storage has nothing in flight (so no answer is owed that could lift the pause).
 */
function blockedOnProducer(server: TestServer): boolean {
  return producerView(server)?.readingPausedFor.includes('backlog') === true && server.broker.inflightBytes === 0;
}

/** The STOMP session objects, to check that a closed one is not kept alive. */
function sessions(server: TestServer): Set<object> {
  return Reflect.get(server.gateway, 'sessions') as Set<object>;
}

/** Samples the test process's RSS (server included: it runs in this process) until stopped; `peak` is the largest seen. */
function rssSampler(): { readonly peak: number; stop(): void } {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  return {
    get peak() {
      return Math.max(peak, process.memoryUsage().rss);
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Resolves true at the socket's next 'drain', or false once none has come for a second while the
 * server is blocked on the producer (blockedOnProducer): then the socket takes no more.
 */
function drainedOrStalled(socket: net.Socket, serverStopped: () => boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const since = Date.now();
    const onDrain = (): void => finish(true);
    const timer = setInterval(() => {
      if (Date.now() - since >= 1000 && serverStopped()) finish(false);
    }, 25);
    function finish(drained: boolean): void {
      clearInterval(timer);
      socket.off('drain', onDrain);
      resolve(drained);
    }
    socket.once('drain', onDrain);
  });
}

/**
 * RSS may grow by this much and no more. Generous on purpose: the test process holds the server,
 * its two broker workers and the clients; V8 grows its heap before it collects, the log's batch
 * buffers and the parsers' buffers come and go, and the OS returns freed memory lazily. A server
 * that kept reading would hold 200,000 RECEIPTs and acknowledgments (about 60 MB of frames, and
 * several times that in per-write bookkeeping) plus whatever the producer still writes.
 */
const RSS_GROWTH_LIMIT = 300 * 1024 * 1024;

describe('a producer that never reads its socket', () => {
  const servers = useServers();

  it('is no longer read from once its answers back up, while others are served; it is answered in full once it reads', { timeout: 120_000 }, async () => {
    const highWater = 256 * 1024;
    const server = await servers.start({
      brokers: { workers: 2 },
      limits: { connectionHighWaterBytes: highWater },
      topics: { definitions: [{ name: 'abuse', partitions: 4 }] },
    });
    const base = httpBase(server.httpPort);
    const answers = new Answers();
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(server.stompPort, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    socket.on('data', (chunk: Buffer) => answers.parser.push(chunk));
    socket.write(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'rill' }));
    socket.write(encodeFrame('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/abuse', receipt: 'acks' }));
    await until('the acknowledgment subscription', () => answers.subscribed);
    const session = new WeakRef([...sessions(server)].at(-1)!);
    socket.pause();

    gc();
    const baseline = process.memoryUsage().rss;
    const rss = rssSampler();
    const total = 200_000;
    const deadline = Date.now() + 40_000;
    let written = 0;
    let stalled = false;
    while (written < total && Date.now() < deadline) {
      let chunk = '';
      for (const end = Math.min(total, written + 64); written < end; written++) chunk += sendFrame('abuse', written);
      if (!socket.write(chunk) && !(await drainedOrStalled(socket, () => blockedOnProducer(server)))) {
        stalled = true;
        break;
      }
    }

    // The server stopped reading: its view says why, and what it holds for the producer stays
    // near the mark: the mark, plus at most the answers to one read (a 64 KiB chunk of these
    // SENDs is answered with about 250 KB), the answers of publishes in flight counting toward it.
    expect(stalled).toBe(true);
    const view = producerView(server)!;
    expect(view.readingPausedFor).toContain('backlog');
    expect(view.bufferedBytes).toBeGreaterThan(highWater / 2);
    expect(view.bufferedBytes).toBeLessThan(highWater + 512 * 1024);
    const storedWhilePaused = await storedCount(base, 'abuse');
    expect(storedWhilePaused).toBeLessThan(written / 2);

    // Someone else is served meanwhile (and is the barrier: what they stored went through
    // storage after anything of the producer's the server could still have been holding).
    const other = await RawStompClient.session(server.stompPort);
    for (let i = 0; i < 100; i++) other.send('SEND', { destination: '/producer/publish/other', receipt: `o${i}` }, JSON.stringify({ message: i }));
    for (let i = 0; i < 100; i++) await other.receipt(`o${i}`);
    other.send('SUBSCRIBE', { id: 'read', destination: '/topic/other', from: 'earliest', receipt: 'reading' });
    await other.receipt('reading');
    await until('the other client reads what it stored', () => other.all('MESSAGE').length === 100);
    other.close();
    expect(await storedCount(base, 'abuse')).toBe(storedWhilePaused);
    expect(producerView(server)!.readingPausedFor).toContain('backlog');
    expect(rss.peak - baseline).toBeLessThan(RSS_GROWTH_LIMIT);

    // The producer reads again: every SEND it wrote is stored and answered, in order.
    socket.resume();
    await until(`${written} RECEIPTs`, () => answers.receipts >= written || answers.problems.length > 0, 90_000);
    await until(`${written} acknowledgments`, () => answers.acks >= written || answers.problems.length > 0, 30_000);
    rss.stop();
    expect(answers.problems).toEqual([]);
    expect(answers.errors).toEqual([]);
    expect(answers.receipts).toBe(written);
    expect(answers.acks).toBe(written);
    expect(await storedCount(base, 'abuse')).toBe(written);
    expect(producerView(server)!.readingPausedFor).toEqual([]);
    expect(rss.peak - baseline).toBeLessThan(RSS_GROWTH_LIMIT);

    // It leaves: nothing keeps its session alive.
    socket.destroy();
    await until('the connection to be gone', () => producerView(server) === undefined);
    await until('the session to be collected', () => {
      gc();
      return session.deref() === undefined;
    });
  });

  it('over WebSocket too: the server stops reading from a client that does not read, and resumes when it drains', { timeout: 120_000 }, async () => {
    const highWater = 128 * 1024;
    const server = await servers.start({
      brokers: { workers: 2 },
      limits: { connectionHighWaterBytes: highWater },
      topics: { definitions: [{ name: 'wsabuse', partitions: 4 }] },
    });
    const answers = new Answers();
    const ws = new WebSocket(server.wsUrl, ['v12.stomp']);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.on('message', (data: Buffer) => answers.parser.push(data));
    ws.send(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'rill' }));
    ws.send(encodeFrame('SUBSCRIBE', { id: 'acks', destination: '/topic/acknowledgment/wsabuse', receipt: 'acks' }));
    await until('the acknowledgment subscription', () => answers.subscribed);
    ws.pause();

    const total = 150_000;
    const deadline = Date.now() + 40_000;
    let written = 0;
    let stalled = false;
    let progressAt = Date.now();
    let lastBuffered = 0;
    while (written < total && Date.now() < deadline) {
      let chunk = '';
      for (const end = Math.min(total, written + 64); written < end; written++) chunk += sendFrame('wsabuse', written);
      ws.send(chunk);
      if (ws.bufferedAmount < 256 * 1024) continue;
      // Backpressure on the client's side: wait for its buffer to go down, or for a stall.
      progressAt = Date.now();
      lastBuffered = ws.bufferedAmount;
      const outcome = await until('the client socket to drain or stall', () => {
        const buffered = ws.bufferedAmount;
        if (buffered < 64 * 1024) return 'drained';
        if (buffered < lastBuffered) {
          lastBuffered = buffered;
          progressAt = Date.now();
        }
        return Date.now() - progressAt >= 1000 && blockedOnProducer(server) ? 'stalled' : undefined;
      });
      if (outcome === 'stalled') {
        stalled = true;
        break;
      }
    }
    expect(stalled).toBe(true);
    const view = producerView(server)!;
    expect(view.transport).toBe('websocket');
    expect(view.readingPausedFor).toEqual(['backlog']);
    expect(view.bufferedBytes).toBeGreaterThan(highWater / 2);
    expect(view.bufferedBytes).toBeLessThan(highWater + 512 * 1024);

    ws.resume();
    await until(`${written} RECEIPTs`, () => answers.receipts >= written || answers.problems.length > 0, 90_000);
    await until(`${written} acknowledgments`, () => answers.acks >= written || answers.problems.length > 0, 30_000);
    expect(answers.problems).toEqual([]);
    expect(answers.receipts).toBe(written);
    expect(await storedCount(httpBase(server.httpPort), 'wsabuse')).toBe(written);
    expect(producerView(server)!.readingPausedFor).toEqual([]);
    ws.terminate();
  });
});
