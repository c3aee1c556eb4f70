import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { encodeFrame, FrameParser, type Frame } from '../../src/protocol/stomp/index.js';
import { exited, useChildServers } from '../helpers/child-server.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

/** A STOMP-over-WebSocket producer without a client library, to see every frame and the close code. */
class WebSocketProducer {
  readonly frames: Frame[] = [];
  closeCode: number | null = null;
  private constructor(private readonly socket: WebSocket) {
    const parser = new FrameParser((frame) => this.frames.push({ ...frame, body: Buffer.from(frame.body) }), {
      maxFrameBytes: 1 << 20,
      maxHeaders: 100,
      maxHeaderBytes: 1 << 16,
    });
    socket.on('message', (data: Buffer) => parser.push(data));
    socket.on('close', (code) => (this.closeCode = code));
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<WebSocketProducer> {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/stomp`, ['v12.stomp']);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    const producer = new WebSocketProducer(socket);
    producer.send('CONNECT', { 'accept-version': '1.2', host: 'rill' });
    await until('CONNECTED', () => producer.frames.find((f) => f.command === 'CONNECTED'));
    return producer;
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(command: string, headers: Record<string, string>, body?: string): void {
    if (this.open) this.socket.send(encodeFrame(command, headers, body));
  }
}

describe('shutdown', () => {
  const startChild = useChildServers();
  const servers = useServers();

  it('on SIGTERM answers every SEND it read, tells each client it is going away, and stores nothing it did not answer', async () => {
    const dataDir = servers.tempDir();
    const child = await startChild(dataDir);
    const tcp = [await RawStompClient.session(child.stompPort), await RawStompClient.session(child.stompPort)];
    const ws = await WebSocketProducer.connect(child.httpPort);
    const producers: Array<{ name: string; send: (headers: Record<string, string>, body: string) => void; frames: () => readonly Frame[] }> = [
      ...tcp.map((client, i) => ({
        name: `tcp${i}`,
        send: (headers: Record<string, string>, body: string) => (client.closed ? undefined : client.send('SEND', headers, body)),
        frames: () => [...client.all('RECEIPT'), ...client.all('ERROR')],
      })),
      { name: 'ws', send: (headers: Record<string, string>, body: string) => ws.send('SEND', headers, body), frames: () => ws.frames },
    ];
    let sent = 0;
    const pump = setInterval(() => {
      for (const producer of producers) {
        for (let i = 0; i < 50; i++, sent++) {
          const id = `${producer.name}-${sent}`;
          producer.send({ destination: '/producer/publish/going', receipt: id }, canonical(id, `k${sent % 13}`, 'x'.repeat(64)));
        }
      }
    }, 2);
    await until('receipts on every connection', () => producers.every((p) => p.frames().filter((f) => f.command === 'RECEIPT').length > 200));

    child.process.kill('SIGTERM');
    expect(await exited(child.process)).toBe(0);
    clearInterval(pump);
    await until('every connection closed', () => tcp.every((c) => c.closed) && ws.closeCode !== null);

    const receipted = new Set<string>();
    for (const producer of producers) {
      const frames = producer.frames().filter((f) => f.command === 'RECEIPT' || f.command === 'ERROR');
      const last = frames.at(-1)!;
      // The ERROR comes last, after the receipt of every SEND the broker had read.
      expect(last.command, producer.name).toBe('ERROR');
      expect(last.headers).toMatchObject({ code: 'unavailable', retriable: 'true' });
      expect(last.headers.message).toMatch(/shutting down/);
      expect(frames.filter((f) => f.command === 'ERROR')).toHaveLength(1);
      for (const f of frames) if (f.command === 'RECEIPT') receipted.add(f.headers['receipt-id']!);
    }
    expect(ws.closeCode).toBe(1001);
    expect(sent).toBeGreaterThan(receipted.size);

    // Exactly what was answered is stored: nothing acknowledged is missing, nothing unanswered was kept.
    const restarted = await servers.start({}, dataDir);
    const stored = await readTopic(restarted, 'going', 60_000);
    const storedIds = stored.map((m) => m.messageId);
    expect(new Set(storedIds).size).toBe(storedIds.length);
    expect(new Set(storedIds)).toEqual(receipted);
  });
});
