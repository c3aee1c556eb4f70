import postgres from 'postgres';
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

/** Event-loop turns enough for a write that was free to go to have gone. */
const turns = async () => {
  for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
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

  it("after a write whose connection was lost (it may still commit, last), the next writes, of any key, wait until the database is back with none of this node's statements from before running", async () => {
    const database = controlledDatabase();
    let lost = 0;
    let back: () => void = () => {};
    const backAgain = new Promise<void>((resolve) => (back = resolve));
    const table = new OffsetTable(database.sql, { lost: () => lost++, back: () => backAgain });
    const first = table.write('offset/g/t/0', '{"offset":50}');
    await until(() => database.writes.length === 1);
    const second = table.write('offset/g/t/0', '{"offset":80}');
    database.writes[0]!.fail(new Error('write CONNECTION_CLOSED'));
    await expect(first).rejects.toThrow('CONNECTION_CLOSED');
    expect(lost).toBe(1);
    const otherKey = table.write('offset/g/t/1', '{"offset":7}');
    // Neither the same key's next value nor another key's goes out while the lost write may still run.
    await turns();
    expect(database.writes).toHaveLength(1);
    // Made while held: it goes with the held one, as one write of the newest.
    const third = table.write('offset/g/t/0', '{"offset":85}');
    back();
    await until(() => database.writes.length === 3);
    await turns();
    expect(database.writes.slice(1).map((w) => [w.key, w.value])).toEqual([
      ['offset/g/t/0', '{"offset":85}'],
      ['offset/g/t/1', '{"offset":7}'],
    ]);
    database.writes[1]!.answer(2);
    database.writes[2]!.answer(3);
    expect(await Promise.all([second, third, otherKey])).toEqual([2, 2, 3]);
    // Back: a write goes out at once again.
    const later = table.write('offset/g/t/0', '{"offset":90}');
    await until(() => database.writes.length === 4);
    database.writes[3]!.answer(4);
    expect(await later).toBe(4);
    expect(lost).toBe(1);
  });

  it('a loss reported while writes wait for the database to be back is waited out too; an error the server answered with holds nothing', async () => {
    const database = controlledDatabase();
    const backs: Array<() => void> = [];
    let lost = 0;
    const table = new OffsetTable(database.sql, { lost: () => lost++, back: () => new Promise<void>((resolve) => backs.push(resolve)) });
    const a = table.write('offset/g/t/0', '{"offset":1}');
    const c = table.write('offset/g/t/2', '{"offset":1}');
    await until(() => database.writes.length === 2);
    database.writes[0]!.fail(new Error('write CONNECTION_CLOSED'));
    await expect(a).rejects.toThrow('CONNECTION_CLOSED');
    const b = table.write('offset/g/t/1', '{"offset":1}');
    await turns();
    // c, sent before the first loss, is lost too while b waits.
    database.writes[1]!.fail(new Error('write CONNECTION_CLOSED'));
    await expect(c).rejects.toThrow('CONNECTION_CLOSED');
    expect(lost).toBe(2);
    // Back after the first loss only: b waits for the second to be waited out.
    for (const resolve of backs.splice(0)) resolve();
    await turns();
    expect(database.writes).toHaveLength(2);
    for (const resolve of backs.splice(0)) resolve();
    await until(() => database.writes.length === 3);
    database.writes[2]!.answer(9);
    expect(await b).toBe(9);

    // A unique violation, say: answered by the server, the write did not run on; the next goes at once.
    const refused = table.write('offset/g/t/0', '{"offset":2}');
    await until(() => database.writes.length === 4);
    const serverError = Object.assign(Object.create(postgres.PostgresError.prototype) as Error, { message: 'duplicate key', code: '23505' });
    database.writes[3]!.fail(serverError);
    await expect(refused).rejects.toBe(serverError);
    const next = table.write('offset/g/t/0', '{"offset":3}');
    await until(() => database.writes.length === 5);
    database.writes[4]!.answer(10);
    expect(await next).toBe(10);
    expect(lost).toBe(2);
  });
});
