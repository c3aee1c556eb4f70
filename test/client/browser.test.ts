import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { type BrokerErrorCode, connect, type Message } from '../../src/client/index.js';
import { randomId } from '../../src/client/random-id.js';
import type { ErrorCode } from '../../src/errors/index.js';
import { until } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

const CLIENT_DIR = path.resolve(import.meta.dirname, '../../src/client');
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const servers = useServers();

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('rill/client in a browser', () => {
  it('imports nothing but @stomp/stompjs and its own files', () => {
    const files = readdirSync(CLIENT_DIR, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
    expect(files).toContain('index.ts');
    for (const file of files) {
      // TypeScript's own scanner: static imports, re-exports, dynamic import() and require() alike.
      const { importedFiles } = ts.preProcessFile(readFileSync(path.join(CLIENT_DIR, file), 'utf8'), true, true);
      for (const { fileName: specifier } of importedFiles) {
        if (specifier === '@stomp/stompjs') continue;
        expect(specifier, `${file} imports "${specifier}"`).toMatch(/^\.\/[a-z-]+\.js$/);
        const target = path.resolve(CLIENT_DIR, path.dirname(file), specifier.replace(/\.js$/, '.ts'));
        expect(path.relative(CLIENT_DIR, target).startsWith('..'), `${file} imports "${specifier}" outside src/client`).toBe(false);
        expect(files, `${file} imports "${specifier}", which does not exist`).toContain(path.relative(CLIENT_DIR, target));
      }
    }
  });

  it("type-checks with the DOM's globals and none of Node's", async () => {
    // src/client/tsconfig.json: lib ES2022 + DOM, no @types/node, so Buffer, process or NodeJS.Timeout would not compile.
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const run = promisify(execFile)(process.execPath, [tsc, '-p', CLIENT_DIR]);
    await expect(run).resolves.toMatchObject({ stdout: '' });
  });

  it('connects with the global WebSocket when given none, and says what to pass when there is none', async () => {
    const server = await servers.start();
    vi.stubGlobal('WebSocket', undefined);
    await expect(connect({ url: server.wsUrl })).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining("'ws'") });

    vi.stubGlobal('WebSocket', WebSocket);
    const client = await connect({ url: server.wsUrl, reconnectDelayMs: 0 });
    const stored = await client.publish('page', { clicked: true });
    const read: Message[] = [];
    await client.tail('page', { from: 'earliest', onMessage: (m) => void read.push(m) });
    await until('the message read back', () => read.length === 1);
    expect(read[0]).toMatchObject({ messageID: stored.messageID, partition: stored.partition, offset: stored.offset });
    expect(read[0]!.value()).toEqual({ clicked: true });
    await client.disconnect();
    expect(client.state).toBe('closed');
  });

  it('makes messageIDs with crypto.getRandomValues, which insecure origins have, and without any crypto too', () => {
    const { crypto } = globalThis;
    const getRandomValues = vi.fn(<T extends ArrayBufferView>(array: T): T => crypto.getRandomValues(array as unknown as Uint8Array) as unknown as T);
    // An insecure origin's crypto: no randomUUID.
    vi.stubGlobal('crypto', { getRandomValues });
    expect(randomId()).toMatch(UUID_V4);
    expect(getRandomValues).toHaveBeenCalledOnce();

    vi.stubGlobal('crypto', undefined);
    const ids = new Set(Array.from({ length: 2000 }, () => randomId()));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(UUID_V4);
  });

  it("knows the broker's error codes", () => {
    // The client copies the broker's table (it may not import it): the two lists are the same.
    expectTypeOf<BrokerErrorCode>().toEqualTypeOf<ErrorCode>();
  });
});
