import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { exited, useChildServers, type ChildServer } from '../helpers/child-server.js';
import { canonical, RawStompClient, readTopic, until } from '../helpers/clients.js';
import { call, httpBase, storedCount } from '../helpers/http.js';
import { useServers } from '../helpers/server.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const PROCESSOR = fileURLToPath(new URL('./fixtures/transactional-processor.ts', import.meta.url));
const INPUTS = 2000;
const CYCLES = 6;

/** The group's lag over every partition of the input topic. */
async function lag(base: string): Promise<number> {
  const answer = await call(base, 'GET', '/v1/groups/proc/lag');
  if (answer.status === 404) return INPUTS;
  return (answer.body.partitions as Array<{ topic: string; lag: number }>).filter((p) => p.topic === 'in').reduce((sum, p) => sum + p.lag, 0);
}

describe('exactly-once consume-transform-produce under kill -9', () => {
  const tempDir = useTempDirs();
  const servers = useServers();
  const startChild = useChildServers();
  const processors: ChildProcess[] = [];
  afterEach(async () => {
    const running = processors.splice(0);
    for (const child of running) child.kill('SIGKILL');
    await Promise.all(running.map((child) => exited(child)));
  });

  it('a processor reading topic in and writing topic out in transactions, it and the broker killed again and again, leaves each input’s output in out exactly once', {
    timeout: 180_000,
  }, async () => {
    const dataDir = tempDir();
    const configFile = path.join(tempDir(), 'rill.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        topics: {
          definitions: [
            { name: 'in', partitions: 4 },
            { name: 'out', partitions: 4 },
          ],
        },
        // A killed processor's partitions go to the next one soon.
        coordinator: { sessionTimeoutMs: 1000, resetPolicy: 'earliest' },
      }),
    );
    const startBroker = () => startChild(dataDir, { args: ['--config', configFile] });
    let broker: ChildServer = await startBroker();

    const producer = await RawStompClient.session(broker.stompPort);
    for (let i = 0; i < INPUTS; i++) producer.send('SEND', { destination: '/producer/publish/in', receipt: `r${i}` }, canonical(`in-${i}`, `k${i % 50}`, i));
    await until('every input stored', () => producer.all('RECEIPT').length === INPUTS, 60_000);
    producer.close();

    let processor: ChildProcess | null = null;
    const ensureProcessor = (): void => {
      if (processor !== null && processor.exitCode === null && processor.signalCode === null) return;
      processor = spawn(process.execPath, ['--import', 'tsx', PROCESSOR, String(broker.stompPort), 'proc', 'in', 'out'], { stdio: 'ignore' });
      processors.push(processor);
    };

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const base = httpBase(broker.httpPort);
      const before = await storedCount(base, 'out');
      ensureProcessor();
      // Killed while it works: once it has stored more outputs since the last kill.
      await vi.waitFor(
        async () => {
          ensureProcessor();
          expect(await storedCount(base, 'out'), `outputs in cycle ${cycle}`).toBeGreaterThanOrEqual(Math.min(before + 100, INPUTS));
        },
        { timeout: 60_000, interval: 50 },
      );
      if (cycle % 2 === 0) {
        processor!.kill('SIGKILL');
        await exited(processor!);
      } else {
        broker.process.kill('SIGKILL');
        await exited(broker.process);
        await exited(processor!);
        broker = await startBroker();
      }
    }

    // Left to finish: until the group has committed past every input.
    const base = httpBase(broker.httpPort);
    await vi.waitFor(
      async () => {
        ensureProcessor();
        expect(await lag(base), 'the group past every input').toBe(0);
      },
      { timeout: 120_000, interval: 100 },
    );
    processor!.kill('SIGKILL');
    await exited(processor!);

    const outputs = await readTopic(broker, 'out', 60_000);
    const counts = new Map<string, number>();
    for (const output of outputs) {
      const from = (JSON.parse(output.body.toString()) as { message: { from: string } }).message.from;
      counts.set(from, (counts.get(from) ?? 0) + 1);
    }
    const doubled = [...counts].filter(([, count]) => count > 1);
    expect(doubled, 'inputs whose output is in out more than once').toEqual([]);
    const expected = Array.from({ length: INPUTS }, (_, i) => `in-${i}`);
    expect(
      expected.filter((id) => !counts.has(id)),
      'inputs without an output',
    ).toEqual([]);
    expect(
      [...counts.keys()].filter((id) => !expected.includes(id)),
      'outputs of no input',
    ).toEqual([]);
    expect(outputs.length).toBe(INPUTS);
  });

  it('completes a processor’s transaction decided when the broker died: at restart the input’s offset is committed and its output stored, once', {
    timeout: 60_000,
  }, async () => {
    const dataDir = tempDir();
    const configFile = path.join(tempDir(), 'rill.json');
    const definitions = {
      topics: {
        definitions: [
          { name: 'in', partitions: 1 },
          { name: 'out', partitions: 1 },
        ],
      },
    };
    fs.writeFileSync(configFile, JSON.stringify(definitions));
    const broker = await startChild(dataDir, { args: ['--config', configFile], env: { RILL_FAILPOINTS: 'transaction=kill-after-log' } });
    const client = await RawStompClient.session(broker.stompPort);
    client.send('SEND', { destination: '/producer/publish/in', receipt: 'stored' }, canonical('in-0', 'k', 0));
    await client.receipt('stored');
    client.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual' });
    const input = await client.next('MESSAGE');
    client.send('BEGIN', { transaction: 't' });
    client.send('ACK', { id: input.headers.ack, transaction: 't' });
    client.send('SEND', { destination: '/producer/publish/out', transaction: 't' }, JSON.stringify({ key: 'k', message: { from: 'in-0' } }));
    client.send('COMMIT', { transaction: 't', receipt: 'committed' });
    // Killed once the decision was durable, before the output or the offset was written.
    await exited(broker.process);
    expect(client.all('RECEIPT').map((f) => f.headers['receipt-id'])).toEqual(['stored']);

    const restarted = await servers.start(definitions, dataDir);
    const base = httpBase(restarted.httpPort);
    const outputs = await readTopic(restarted, 'out');
    expect(outputs.map((m) => (JSON.parse(m.body.toString()) as { message: { from: string } }).message.from)).toEqual(['in-0']);
    expect(await lag(base)).toBe(0);
    // The group goes on after the input: nothing is delivered again.
    const next = await RawStompClient.session(restarted.stompPort);
    next.send('SUBSCRIBE', { id: 'in', destination: '/group/proc/in', ack: 'client-individual', receipt: 'joined' });
    await next.receipt('joined');
    next.send('SEND', { destination: '/producer/publish/in', receipt: 'more' }, canonical('in-1', 'k', 1));
    await next.receipt('more');
    expect((await next.next('MESSAGE')).headers['message-id']).toBe('in-1');
    next.close();
  });
});
