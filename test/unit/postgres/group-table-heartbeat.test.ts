import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../../src/logging/index.js';
import type { Sql } from '../../../src/postgres/connection.js';
import { GroupTable } from '../../../src/postgres/group-table.js';

/** A database whose heartbeat statements answer when told; every other statement answers at once. */
function controlledDatabase() {
  const heartbeats: Array<{ answer: (others: boolean) => void; fail: (error: unknown) => void }> = [];
  const statements: string[] = [];
  const sql = ((strings: TemplateStringsArray) => {
    const text = strings.join('?');
    statements.push(text);
    if (!text.includes('INSERT INTO rill_nodes')) return Promise.resolve([]);
    return new Promise((answer, fail) => heartbeats.push({ answer: (others) => answer([{ others }]), fail }));
  }) as unknown as Sql;
  (sql as unknown as { listen: () => Promise<void> }).listen = () => Promise.resolve();
  return { sql, heartbeats, statements };
}

describe('GroupTable heartbeats', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  async function started() {
    const database = controlledDatabase();
    const table = new GroupTable(database.sql, 'a', createLogger('silent'));
    const peers: boolean[] = [];
    table.onPeers(({ others }) => peers.push(others));
    const starting = table.start();
    await vi.advanceTimersByTimeAsync(0);
    database.heartbeats[0]!.answer(false);
    await starting;
    return { ...database, table, peers };
  }

  it('keeps at most three heartbeat writes waiting for the database, and goes on once they are answered', async () => {
    const { heartbeats, peers } = await started();
    await vi.advanceTimersByTimeAsync(250 * 10);
    // The first (at start) answered, then three waiting: the seven other ticks skipped.
    expect(heartbeats).toHaveLength(4);
    for (const heartbeat of heartbeats.slice(1)) heartbeat.answer(true);
    await vi.advanceTimersByTimeAsync(250);
    expect(heartbeats).toHaveLength(5);
    expect(peers).toEqual([false, true, true, true]);
  });

  it('drops an answer that comes after a newer one', async () => {
    const { heartbeats, peers } = await started();
    await vi.advanceTimersByTimeAsync(500);
    expect(heartbeats).toHaveLength(3);
    // The newer write says another node is here; the older one, answered after it, said none was.
    heartbeats[2]!.answer(true);
    await vi.advanceTimersByTimeAsync(0);
    heartbeats[1]!.answer(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(peers).toEqual([false, true]);
  });

  it('deletes its row only once every heartbeat write in flight has ended', async () => {
    const { table, heartbeats, statements } = await started();
    await vi.advanceTimersByTimeAsync(500);
    const closing = table.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(statements.some((text) => text.includes('DELETE FROM rill_nodes'))).toBe(false);
    heartbeats[1]!.answer(false);
    heartbeats[2]!.fail(new Error('gone'));
    await closing;
    expect(statements.at(-1)).toContain('DELETE FROM rill_nodes');
  });
});
