import { describe, expect, it } from 'vitest';
import type { Sql } from '../../../src/postgres/connection.js';
import { OffsetTable } from '../../../src/postgres/offset-table.js';

/** A database whose writes answer when told, in any order: each write's key, value and its answer. */
function controlledDatabase() {
  const writes: Array<{ key: string; value: string | null; answer: (at: number) => void; fail: (error: unknown) => void }> = [];
  const sql = ((_strings: TemplateStringsArray, key: string, value: string | null) =>
    new Promise((resolve, reject) => writes.push({ key, value, answer: (at) => resolve([{ at }]), fail: reject }))) as unknown as Sql;
  return { sql, writes };
}

const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
};

describe('OffsetTable', () => {
  it("writes one key's values one at a time, in the order they were made; those made meanwhile go as one write of the newest", async () => {
    const database = controlledDatabase();
    const table = new OffsetTable(database.sql);
    const first = table.write('offset/g/t/0', '{"offset":50}');
    const second = table.write('offset/g/t/0', '{"offset":80}');
    const third = table.write('offset/g/t/0', '{"offset":100}');
    const otherKey = table.write('offset/g/t/1', '{"offset":7}');
    await until(() => database.writes.length >= 2);
    // The other key's write does not wait; the same key's second does.
    expect(database.writes.map((w) => [w.key, w.value])).toEqual([
      ['offset/g/t/0', '{"offset":50}'],
      ['offset/g/t/1', '{"offset":7}'],
    ]);
    database.writes[1]!.answer(2);
    expect(await otherKey).toBe(2);
    database.writes[0]!.answer(1);
    expect(await first).toBe(1);
    await until(() => database.writes.length === 3);
    expect(database.writes[2]).toMatchObject({ key: 'offset/g/t/0', value: '{"offset":100}' });
    database.writes[2]!.answer(3);
    expect(await Promise.all([second, third])).toEqual([3, 3]);

    // A write that fails fails its callers only; the next goes on.
    const failing = table.write('offset/g/t/0', '{"offset":110}');
    await until(() => database.writes.length === 4);
    const after = table.write('offset/g/t/0', '{"offset":120}');
    database.writes[3]!.fail(new Error('connection lost'));
    await expect(failing).rejects.toThrow('connection lost');
    await until(() => database.writes.length === 5);
    database.writes[4]!.answer(5);
    expect(await after).toBe(5);
  });

  it('is settled only once every write waiting behind another went out and was answered (the pool ends after it)', async () => {
    const database = controlledDatabase();
    const table = new OffsetTable(database.sql);
    void table.write('offset/g/t/0', '{"offset":1}');
    void table.write('offset/g/t/0', '{"offset":2}');
    let settled = false;
    const settling = table.settled().then(() => (settled = true));
    await until(() => database.writes.length === 1);
    database.writes[0]!.answer(1);
    await until(() => database.writes.length === 2);
    expect(settled).toBe(false);
    database.writes[1]!.answer(2);
    await settling;
    expect(settled).toBe(true);
  });
});
