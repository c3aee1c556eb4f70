import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, type RunningBroker, StartupError, startBroker } from '../../src/index.js';
import { createLogger } from '../../src/logging/index.js';
import { canonical, connectStompJs, publishWithReceipt, readTopic } from '../helpers/clients.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const silent = { logger: createLogger('silent') };

describe('Rill as a library', () => {
  const tempDir = useTempDirs();

  it('starts a broker in-process with a config object, serves clients at its urls, and keeps what it stored across a stop and a start', async () => {
    const dataDir = tempDir();
    const config = { storage: { dataDir }, server: { httpPort: 0, stompPort: 0 }, brokers: { workers: 1 } };
    let broker: RunningBroker = await startBroker(config, silent);
    try {
      expect(broker.urls.websocket).toBe(`ws://127.0.0.1:${broker.httpPort}/stomp`);
      expect(broker.urls.stomp).toBe(`tcp://127.0.0.1:${broker.stompPort}`);
      expect((await fetch(`${broker.urls.http}/health`)).status).toBe(200);
      const client = await connectStompJs(broker.urls.websocket);
      await publishWithReceipt(client, '/producer/publish/embedded', canonical('e1', 'k', 'from the library'));
      await client.deactivate();
    } finally {
      await broker.close();
    }
    broker = await startBroker(config, silent);
    try {
      const [stored] = await readTopic(broker, 'embedded');
      expect(stored?.messageId).toBe('e1');
    } finally {
      await broker.close();
    }
  });

  it('refuses a bad setting with a ConfigError naming it, and a data directory in use with a StartupError', async () => {
    await expect(startBroker({ server: { httpPort: 70_000 } }, silent)).rejects.toThrow(ConfigError);
    await expect(startBroker({ server: { httpPort: 70_000 } }, silent)).rejects.toThrow(/httpPort/);
    const dataDir = tempDir();
    const first = await startBroker({ storage: { dataDir }, server: { httpPort: 0, stompPort: 0 }, brokers: { workers: 1 } }, silent);
    try {
      const second = startBroker({ storage: { dataDir }, server: { httpPort: 0, stompPort: 0 }, brokers: { workers: 1 } }, silent);
      await expect(second).rejects.toThrow(StartupError);
      await expect(second).rejects.toMatchObject({ setting: 'storage.dataDir' });
    } finally {
      await first.close();
    }
  });

  it('is the package’s face: package.json exports it with its types, from what the build emits', async () => {
    const manifest = JSON.parse(fs.readFileSync(`${ROOT}package.json`, 'utf8'));
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    const build = JSON.parse(fs.readFileSync(`${ROOT}tsconfig.build.json`, 'utf8'));
    expect(build.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist', declaration: true });
    // `npm install` builds dist/ (the prepare script): the package imports by its own name, as a user's code would.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '-e', "const rill = await import('rill'); console.log(typeof rill.startBroker, typeof rill.ConfigError)"],
      { cwd: ROOT },
    );
    expect(stdout.trim()).toBe('function function');
    expect(fs.readFileSync(`${ROOT}dist/index.d.ts`, 'utf8')).toContain('export declare function startBroker(');
  });
});
