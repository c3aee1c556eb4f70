import { describe, expect, it } from 'vitest';
import type { PendingBatch } from '../../../src/postgres/batch-table.js';
import { AppendsHeldError, AppendTimeoutError, GroupCommit } from '../../../src/postgres/group-commit.js';

/** A batch table whose append statements answer when told, in the order they were made. */
function controlledTable() {
  const statements: Array<{ batches: readonly PendingBatch[]; answer: (offsets: number[]) => void; fail: (error: unknown) => void }> = [];
  return {
    statements,
    append(batches: readonly PendingBatch[]): Promise<number[]> {
      return new Promise((answer, fail) => statements.push({ batches, answer, fail }));
    },
  };
}

const batch = (partition: number): PendingBatch => ({ topic: 't', partition, span: 1, maxTimestamp: 0, position: 0, size: 1 });
const submit = (commit: GroupCommit, partition: number) => commit.submit([batch(partition)], [Buffer.from([partition])], 1);
const settledAs = (promise: Promise<unknown>) =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
const until = async (condition: () => boolean) => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 1));
};

describe('GroupCommit', () => {
  it('sends the turns that came while a statement ran as the next statement, one statement at a time', async () => {
    const table = controlledTable();
    const commit = new GroupCommit(table, 10_000, () => {});
    const first = submit(commit, 0);
    const second = submit(commit, 1);
    const third = submit(commit, 2);
    await until(() => table.statements.length === 1);
    table.statements[0]!.answer([10]);
    expect(await first).toEqual([10]);
    await until(() => table.statements.length === 2);
    expect(table.statements[1]!.batches.map((b) => b.partition)).toEqual([1, 2]);
    table.statements[1]!.answer([20, 30]);
    expect(await Promise.all([second, third])).toEqual([[20], [30]]);
  });

  it('tells a statement’s turns that it may have been stored when the database does not answer in time, refuses the turns behind it and new ones until it answers, and sends nothing after it before then', async () => {
    const table = controlledTable();
    const late: unknown[] = [];
    const commit = new GroupCommit(table, 50, (error) => late.push(error));
    const inDoubt = settledAs(submit(commit, 0));
    await until(() => table.statements.length === 1);
    const behind = settledAs(submit(commit, 1));
    expect((await inDoubt) as { error: unknown }).toEqual({ error: expect.any(AppendTimeoutError) });
    expect((await behind) as { error: unknown }).toEqual({ error: expect.any(AppendsHeldError) });
    expect(commit.holding).toBe(true);
    expect(await settledAs(submit(commit, 2))).toEqual({ error: expect.any(AppendsHeldError) });
    expect(table.statements).toHaveLength(1);

    // It commits late, in its place: appends go on after it.
    table.statements[0]!.answer([7]);
    await until(() => !commit.holding);
    expect(late).toEqual([]);
    const after = submit(commit, 3);
    await until(() => table.statements.length === 2);
    expect(table.statements[1]!.batches.map((b) => b.partition)).toEqual([3]);
    table.statements[1]!.answer([8]);
    expect(await after).toEqual([8]);
  });

  it('cuts the connection of a statement it gives up on; once that fails as lost, refuses appends until the database is back (the statement may still run there)', async () => {
    const table = controlledTable();
    let cuts = 0;
    let back = (): void => {};
    let isBack: Promise<void> | null = null;
    const givenUp = {
      cut: () => void cuts++,
      back: () => {
        isBack = new Promise<void>((resolve) => (back = resolve));
        return isBack;
      },
    };
    const commit = new GroupCommit(table, 50, () => {}, givenUp);
    expect(await settledAs(submit(commit, 0))).toEqual({ error: expect.any(AppendTimeoutError) });
    expect(cuts).toBe(1);
    table.statements[0]!.fail(new Error('CONNECTION_CLOSED'));
    // Answered (failed): whoever reads to learn what it stored may, but appends wait for the database.
    await until(() => !commit.holding);
    expect(await settledAs(submit(commit, 1))).toEqual({ error: expect.any(AppendsHeldError) });
    expect(table.statements).toHaveLength(1);
    back();
    // The group commit waited on it first: by now it has taken it in.
    await isBack;
    const after = submit(commit, 2);
    await until(() => table.statements.length === 2);
    expect(table.statements[1]!.batches.map((b) => b.partition)).toEqual([2]);
    table.statements[1]!.answer([5]);
    expect(await after).toEqual([5]);
  });

  it('reports how a statement given up on failed, and takes appends again after it', async () => {
    const table = controlledTable();
    const late: unknown[] = [];
    const commit = new GroupCommit(table, 50, (error) => late.push(error));
    expect(await settledAs(submit(commit, 0))).toEqual({ error: expect.any(AppendTimeoutError) });
    const lost = new Error('CONNECTION_CLOSED');
    table.statements[0]!.fail(lost);
    await until(() => !commit.holding);
    expect(late).toHaveLength(1);
    expect(late[0]).toBeInstanceOf(AppendTimeoutError);
    expect((late[0] as Error).message).toMatch(/did not answer an append within 50 ms: its connection was cut/);
    expect((late[0] as Error).cause).toBe(lost);
    const after = submit(commit, 1);
    await until(() => table.statements.length === 2);
    table.statements[1]!.answer([0]);
    expect(await after).toEqual([0]);
  });

  it('passes on the failure of a statement answered in time', async () => {
    const table = controlledTable();
    const commit = new GroupCommit(table, 10_000, () => {});
    const refused = settledAs(submit(commit, 0));
    await until(() => table.statements.length === 1);
    const error = Object.assign(new Error('read only'), { code: '25006' });
    table.statements[0]!.fail(error);
    expect(await refused).toEqual({ error });
    expect(commit.holding).toBe(false);
  });
});
