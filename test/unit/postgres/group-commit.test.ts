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

  it('reports how a statement given up on failed, and takes appends again after it', async () => {
    const table = controlledTable();
    const late: unknown[] = [];
    const commit = new GroupCommit(table, 50, (error) => late.push(error));
    expect(await settledAs(submit(commit, 0))).toEqual({ error: expect.any(AppendTimeoutError) });
    const lost = new Error('CONNECTION_CLOSED');
    table.statements[0]!.fail(lost);
    await until(() => !commit.holding);
    expect(late).toEqual([lost]);
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
