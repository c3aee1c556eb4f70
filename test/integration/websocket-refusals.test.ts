import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { encodeFrame, FrameParser, type Frame } from '../../src/protocol/stomp/index.js';
import { until } from '../helpers/clients.js';
import { storedCount } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';

/** A raw STOMP-over-WebSocket client that records every frame and the close code. */
async function connect(url: string): Promise<{ socket: WebSocket; frames: Frame[]; closed: () => number | null }> {
  const socket = new WebSocket(url, ['v12.stomp']);
  const frames: Frame[] = [];
  let code: number | null = null;
  const parser = new FrameParser((frame) => frames.push({ ...frame, body: Buffer.from(frame.body) }), {
    maxFrameBytes: 1 << 20,
    maxHeaders: 100,
    maxHeaderBytes: 1 << 16,
  });
  socket.on('message', (data: Buffer) => parser.push(data));
  socket.on('close', (closeCode) => (code = closeCode));
  socket.on('error', () => {});
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'rill' }));
  await until('CONNECTED', () => frames.find((f) => f.command === 'CONNECTED'));
  return { socket, frames, closed: () => code };
}

describe('WebSocket-layer refusals', () => {
  const servers = useServers();

  it('answers a text message that is not UTF-8 with an ERROR, then closes with 1007, storing nothing', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'utf', partitions: 1 }] } });
    const client = await connect(server.wsUrl);
    const frame = Buffer.concat([Buffer.from('SEND\ndestination:/topic/utf\nkey:k\n\n'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from([0])]);
    client.socket.send(frame, { binary: false });
    const code = await until('the close', () => client.closed());
    expect(code).toBe(1007);
    const error = client.frames.find((f) => f.command === 'ERROR');
    expect(error?.headers).toMatchObject({ code: 'invalid-frame' });
    expect(error?.headers.message).toMatch(/not valid UTF-8/);
    // The same bytes in a binary message are an ordinary raw body.
    const binary = await connect(server.wsUrl);
    binary.socket.send(Buffer.concat([Buffer.from('SEND\ndestination:/topic/utf\nkey:k\nreceipt:r\n\n'), Buffer.from([0xff, 0xfe, 0x80]), Buffer.from([0])]), {
      binary: true,
    });
    await until('the RECEIPT', () => binary.frames.find((f) => f.command === 'RECEIPT'));
    expect(await storedCount(`http://127.0.0.1:${server.httpPort}`, 'utf')).toBe(1);
    binary.socket.close();
  });

  it('answers a message far over the size limit with an ERROR naming stomp.maxFrameBytes, then closes with 1009, storing nothing', async () => {
    const server = await servers.start({ stomp: { maxFrameBytes: 4096 }, topics: { definitions: [{ name: 'big', partitions: 1 }] } });
    const client = await connect(server.wsUrl);
    // A SEND with a receipt first: its RECEIPT is owed before the ERROR.
    client.socket.send(encodeFrame('SEND', { destination: '/producer/publish/big', key: 'k', receipt: 'small' }, Buffer.from('fits')));
    client.socket.send(Buffer.concat([Buffer.from('SEND\ndestination:/producer/publish/big\nkey:k\n\n'), Buffer.alloc(200 * 1024, 0x41), Buffer.from([0])]), {
      binary: true,
    });
    expect(await until('the close', () => client.closed())).toBe(1009);
    const answers = client.frames.filter((f) => f.command !== 'CONNECTED');
    expect(answers.map((f) => f.command)).toEqual(['RECEIPT', 'ERROR']);
    expect(answers[0]!.headers['receipt-id']).toBe('small');
    expect(answers[1]!.headers).toMatchObject({ code: 'invalid-frame' });
    expect(answers[1]!.headers.message).toBe('a WebSocket message larger than the server takes (a frame may be at most 4096 bytes: stomp.maxFrameBytes)');
    expect(await storedCount(`http://127.0.0.1:${server.httpPort}`, 'big')).toBe(1);
    // The server goes on serving others.
    const other = await connect(server.wsUrl);
    other.socket.close();
  });
});
