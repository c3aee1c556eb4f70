import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/logging/index.js';
import { AppendNotices } from '../../../src/postgres/append-notices.js';
import type { Sql } from '../../../src/postgres/connection.js';

/** An appends' connection that records its statements and answers each when told. */
function controlledConnection() {
  const statements: Array<{ text: string; answer: () => void; fail: (error: unknown) => void }> = [];
  const sql = ((strings: TemplateStringsArray) =>
    new Promise<void>((answer, fail) => statements.push({ text: strings.join('?'), answer, fail }))) as unknown as Sql;
  return { sql, statements };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const alone = { others: false, joinedSince: false };
const seen = { others: true, joinedSince: false };

describe('AppendNotices', () => {
  it('notifies appends until no other node is seen, then not; once one is, again, and every end once after the appends sent unnotified', async () => {
    const { sql, statements } = controlledConnection();
    const notices = new AppendNotices(sql, createLogger('silent'));
    expect(notices.appendNotified()).toBe(true);
    notices.peers(alone);
    expect(notices.appendNotified()).toBe(false);
    expect(notices.appendNotified()).toBe(false);
    expect(statements).toEqual([]);

    notices.peers(seen);
    expect(notices.appendNotified()).toBe(true);
    // Not at once: after the appends being issued now reach the connection.
    expect(statements).toEqual([]);
    await settle();
    expect(statements).toHaveLength(1);
    expect(statements[0]!.text).toContain('rill_notify_ends');
    // Once: another heartbeat, or a node saying it joined, asks for no second one.
    notices.peers(seen);
    notices.peers({ others: true, joinedSince: true });
    await settle();
    expect(statements).toHaveLength(1);
    statements[0]!.answer();
    await settle();
    notices.peers(seen);
    expect(statements).toHaveLength(1);
  });

  it('owes no notice of the ends when nothing was appended unnotified', () => {
    const { sql, statements } = controlledConnection();
    const notices = new AppendNotices(sql, createLogger('silent'));
    notices.peers(alone);
    notices.peers({ others: false, joinedSince: true });
    expect(notices.appendNotified()).toBe(true);
    expect(statements).toEqual([]);
  });

  it('sends the ends again at the next heartbeat when sending them failed, even if it found the node alone again meanwhile', async () => {
    const { sql, statements } = controlledConnection();
    const notices = new AppendNotices(sql, createLogger('silent'));
    notices.peers(alone);
    notices.appendNotified();
    notices.peers(seen);
    await settle();
    statements[0]!.fail(new Error('connection lost'));
    await settle();
    notices.peers(alone);
    expect(statements).toHaveLength(1);
    notices.peers(seen);
    await settle();
    expect(statements).toHaveLength(2);
    expect(statements[1]!.text).toContain('rill_notify_ends');
  });

  it('owes the ends again when the database answers after a lost connection, if an append ever went out unnotified', async () => {
    const { sql, statements } = controlledConnection();
    const notices = new AppendNotices(sql, createLogger('silent'));
    notices.connectionBack();
    await settle();
    expect(statements).toEqual([]);
    notices.peers(alone);
    notices.appendNotified();
    notices.peers(seen);
    await settle();
    statements[0]!.answer();
    await settle();
    // An unnotified append on the lost connection may have committed after that notice.
    notices.connectionBack();
    await settle();
    expect(statements).toHaveLength(2);
    expect(statements[1]!.text).toContain('rill_notify_ends');
  });

  it('sends nothing once closed', async () => {
    const { sql, statements } = controlledConnection();
    const notices = new AppendNotices(sql, createLogger('silent'));
    notices.peers(alone);
    notices.appendNotified();
    notices.close();
    notices.peers(seen);
    await settle();
    expect(statements).toEqual([]);
  });
});
