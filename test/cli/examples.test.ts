import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../helpers/clients.js';
import { useServers } from '../helpers/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function run(script: string, args: string[]): { child: ChildProcess; output: string[] } {
  const output: string[] = [];
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  return { child, output };
}

describe('examples', () => {
  const servers = useServers();
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
  });

  it('the producer and the consumer run with one command each, as the seed scripts do', async () => {
    const server = await servers.start({ topics: { definitions: [{ name: 'demo', partitions: 2 }] } });
    const consumer = run('examples/consumer.ts', ['c-1', 'demo-group', 'demo', '0.05', `http://127.0.0.1:${server.httpPort}`]);
    const producer = run('examples/producer.ts', ['demo', '0.05', `ws://127.0.0.1:${server.httpPort}/stomp`]);
    children.push(consumer.child, producer.child);
    await until('the producer to be acknowledged', () => producer.output.join('').includes('"status":"ACK"'));
    await until('the consumer to receive', () => consumer.output.join('').includes('received'));
    expect(consumer.output.join('')).toMatch(/"messageId":"[0-9a-f-]{36}"/);
  });

  it('serves the browser page and the rill/client modules it loads', async () => {
    const server = await servers.start();
    const page = await fetch(`http://127.0.0.1:${server.httpPort}/examples/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("import { RillClient } from 'rill/client';");
    for (const module of ['/ui/vendor/rill-client/index.js', '/ui/vendor/stompjs/index.js']) {
      const script = await fetch(`http://127.0.0.1:${server.httpPort}${module}`);
      expect(script.status, module).toBe(200);
      expect(script.headers.get('content-type'), module).toBe('text/javascript; charset=utf-8');
    }
  });
});
