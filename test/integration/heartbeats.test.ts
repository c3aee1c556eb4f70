import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, type HeaderInput } from '../../src/protocol/stomp/index.js';
import { RawStompClient, until } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

/** What the server wrote, as the client saw it: a heart-beat (an EOL between frames) or the end of a frame. */
interface Arrival {
  at: number;
  what: 'beat' | 'frame';
  /** For a frame, its command. */
  command?: string;
}

/**
 * A plain TCP STOMP client that timestamps (performance.now()) everything the server writes. The
 * stream is split by hand: outside a frame an EOL is a heart-beat; a frame runs to its NUL.
 */
class TimedClient {
  readonly arrivals: Arrival[] = [];
  closedAt: number | undefined;
  private inFrame = false;
  private command = '';

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      const at = performance.now();
      for (const byte of chunk) {
        if (this.inFrame) {
          if (byte === 0) {
            this.inFrame = false;
            this.arrivals.push({ at, what: 'frame', command: this.command.split('\n')[0] ?? '' });
            this.command = '';
          } else if (this.command.length < 64) this.command += String.fromCharCode(byte);
        } else if (byte === 0x0a) this.arrivals.push({ at, what: 'beat' });
        else if (byte !== 0x0d) {
          this.inFrame = true;
          this.command = String.fromCharCode(byte);
        }
      }
    });
    socket.on('close', () => (this.closedAt = performance.now()));
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<TimedClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => resolve(new TimedClient(socket)));
      socket.once('error', reject);
    });
  }

  send(command: string, headers: HeaderInput = {}): void {
    this.socket.write(encodeFrame(command, headers));
  }

  write(bytes: string): void {
    this.socket.write(bytes);
  }

  frames(command: string): Arrival[] {
    return this.arrivals.filter((a) => a.what === 'frame' && a.command === command);
  }

  beats(): Arrival[] {
    return this.arrivals.filter((a) => a.what === 'beat');
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * How late this process's event loop ran, at worst, while a measurement was taken: the server runs
 * in this process, so a stall of the loop (a loaded machine, a GC pause) delays its timers and the
 * client's reads alike, and a gap measured across it is longer by as much, through no fault of the
 * code under test.
 */
function useStallMonitor(): { start: () => void; worstStallMs: () => number } {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  afterEach(() => histogram.disable());
  return {
    start: () => {
      histogram.reset();
      histogram.enable();
    },
    worstStallMs: () => histogram.max / 1e6,
  };
}

/**
 * The slack allowed on top of an interval. Half the interval at least: the code before this fix
 * produced gaps of up to twice the interval (a beat only on a timer tick with nothing written in
 * the whole previous tick; a silence check every interval × grace that forgave any byte in the
 * previous tick), so "under 1.5 × the interval" tells them apart, and leaves 250 ms (at 500 ms)
 * for the scheduling delays of a loaded 2-core machine. When the event loop was measurably held
 * up for longer than that, the gap may be longer by that stall (plus 50 ms for the monitor's own
 * resolution): such a run proves less, but it does not fail for a reason that is not the code's.
 */
function slackMs(intervalMs: number, worstStallMs: number): number {
  return Math.max(intervalMs / 2, worstStallMs + 50);
}

describe('STOMP heart-beats, timed', () => {
  const servers = useServers();
  const stalls = useStallMonitor();

  it('sends a heart-beat within the negotiated interval of CONNECTED, of each frame and of each beat', async () => {
    const interval = 500;
    const server = await servers.start({ stomp: { heartbeat: { sendMs: interval, receiveMs: 0 } } });
    const client = await TimedClient.connect(server.stompPort);
    stalls.start();
    client.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': `0,${interval}` });
    // Each of the 2nd and 4th beats is answered at once with a frame that asks for a RECEIPT: the
    // next beat is then due one interval after that RECEIPT, not one after the beat before it.
    let asked = 0;
    await until('8 heart-beats', () => {
      const beats = client.beats().length;
      if ((beats >= 2 && asked === 0) || (beats >= 4 && asked === 1)) {
        asked++;
        client.send('BEGIN', { transaction: `t-${asked}`, receipt: `r-${asked}` });
      }
      return beats >= 8;
    });
    const worstStall = stalls.worstStallMs();
    client.close();

    const [connected, ...rest] = client.arrivals;
    expect(connected).toMatchObject({ what: 'frame', command: 'CONNECTED' });
    expect(client.frames('RECEIPT')).toHaveLength(2);
    // Gaps between consecutive writes of the server (a frame or a beat), the first from CONNECTED.
    const gaps: number[] = [];
    let previous = connected!.at;
    for (const arrival of rest) {
      gaps.push(arrival.at - previous);
      previous = arrival.at;
    }
    const bound = interval + slackMs(interval, worstStall);
    expect(
      gaps.filter((gap) => gap > bound),
      `gaps (ms) ${gaps.map(Math.round).join(', ')}; worst stall ${Math.round(worstStall)} ms`,
    ).toEqual([]);
    // Not more often either: each beat needs an interval of silence of the server.
    const last = client.arrivals.at(-1)!;
    expect(client.beats().length).toBeLessThanOrEqual(Math.floor((last.at - connected!.at) / interval) + 1);
  });

  it('disconnects a silent client once it has been silent for its interval × grace', async () => {
    const interval = 400;
    const grace = 1.5;
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 0, receiveMs: interval, grace } } });
    const client = await TimedClient.connect(server.stompPort);
    stalls.start();
    // Timed from before CONNECT: the server cannot start counting the silence any earlier.
    const sentConnect = performance.now();
    client.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': `${interval},0` });
    await until('the server to close the silent connection', () => client.closedAt);
    const connected = client.frames('CONNECTED')[0];
    expect(connected).toBeDefined();
    const limit = interval * grace;
    // Not before interval × grace (less 5 ms of timer rounding) ...
    expect(client.closedAt! - sentConnect).toBeGreaterThanOrEqual(limit - 5);
    // ... and not much after: the code before this fix took up to 2 × interval × grace.
    const bound = limit + slackMs(limit, stalls.worstStallMs());
    expect(client.closedAt! - connected!.at, `worst stall ${Math.round(stalls.worstStallMs())} ms`).toBeLessThanOrEqual(bound);
    // No heart-beats were asked for, and no frame but CONNECTED came.
    expect(client.arrivals.map((a) => a.command ?? a.what)).toEqual(['CONNECTED']);
  });

  it('counts the silence from the last byte the client sent', async () => {
    const interval = 400;
    const grace = 1.5;
    const limit = interval * grace;
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 0, receiveMs: interval, grace } } });
    const client = await TimedClient.connect(server.stompPort);
    client.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': `${interval},0` });
    const connected = await until('CONNECTED', () => client.frames('CONNECTED')[0]);
    stalls.start();
    // The client beats every 100 ms for some 1.3 s, twice the 600 ms limit, then stops. Stopping
    // 100 to 200 ms past a multiple of the limit after CONNECTED is also the worst case for a
    // check every `limit` that forgives any byte in the tick before: the code before this fix
    // closed the connection 1000 to 1100 ms after the last beat.
    let lastSent = 0;
    const beat = setInterval(() => {
      client.write('\n');
      lastSent = performance.now();
    }, 100);
    try {
      await until('1.3 s of heart-beats sent', () => lastSent - connected.at >= 1300);
    } finally {
      clearInterval(beat);
    }
    expect(client.closedAt).toBeUndefined();
    await until('the server to close the silent connection', () => client.closedAt);
    // The server read the last beat after it was written: it cannot close less than `limit`
    // after that (less 5 ms of timer rounding) ...
    expect(client.closedAt! - lastSent).toBeGreaterThanOrEqual(limit - 5);
    // ... and closes not much later.
    expect(client.closedAt! - lastSent, `worst stall ${Math.round(stalls.worstStallMs())} ms`).toBeLessThanOrEqual(
      limit + slackMs(limit, stalls.worstStallMs()),
    );
  });
});

describe('STOMP heart-beat values past a timer range', () => {
  const servers = useServers();

  it('neither floods a client that asks for beats every 10^20 ms nor cuts off one that beats every 3·10^9 ms', async () => {
    // The server's defaults (send every 10 s) would send a beat to the first client; its silence
    // check (receive every 100 ms, grace 1.5) is the clock of this test, through a third client.
    const server = await servers.start({ stomp: { heartbeat: { sendMs: 100, receiveMs: 100, grace: 1.5 } } });
    const flooded = await TimedClient.connect(server.stompPort);
    flooded.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': '0,99999999999999999999' });
    await until('CONNECTED', () => flooded.frames('CONNECTED')[0]);
    const patient = await TimedClient.connect(server.stompPort);
    patient.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': '3000000000,0' });
    await until('CONNECTED', () => patient.frames('CONNECTED')[0]);

    // The clock: a client that promised a beat every 200 ms and sends none is closed 300 ms after
    // its CONNECT, by the server's own timer; so by then both clients above were connected for
    // 300 ms of the server's time at least. Before the fix the first had got an EOL every
    // millisecond (about 300 of them), and the second was closed after 2 ms.
    const clock = await RawStompClient.connect(server.stompPort);
    clock.send('CONNECT', { 'accept-version': '1.2', host: 'rill', 'heart-beat': '200,0' });
    await clock.next('CONNECTED');
    await clock.closedByServer();

    for (const [client, name] of [
      [flooded, 'flooded'],
      [patient, 'patient'],
    ] as const) {
      client.send('BEGIN', { transaction: 't', receipt: `still-${name}` });
      await until(`the RECEIPT to ${name}`, () => client.frames('RECEIPT')[0]);
      expect(client.closedAt, name).toBeUndefined();
      // CONNECTED, then the RECEIPT, and no heart-beat between them.
      expect(
        client.arrivals.map((a) => a.command ?? a.what),
        name,
      ).toEqual(['CONNECTED', 'RECEIPT']);
      client.close();
    }
  });
});
