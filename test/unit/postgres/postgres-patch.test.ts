import { once } from 'node:events';
import net from 'node:net';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { postgresPatched } from '../../../src/postgres/connection.js';
import { until } from '../../helpers/clients.js';
import { createDatabase } from '../../helpers/postgres.js';

describe('postgres.js as installed', () => {
  it('carries the patch that paces rounds of the hosts while there is no primary (npm install applies it)', () => {
    expect(postgresPatched()).toBe(true);
  });

  it.each([
    { prepare: true, how: 'prepared' },
    { prepare: false, how: 'unnamed' },
  ])(
    'sends a bytea parameter given as bytes as the bytes themselves (binary), not as hex text twice their size; it arrives whole, beside text parameters and a null ($how statements)',
    async ({ prepare }) => {
      const sockets: net.Socket[] = [];
      const sql = postgres(await createDatabase(), {
        max: 1,
        prepare,
        onnotice: () => {},
        // The patch hands over each socket: what went out on it is counted.
        onsocket: (socket: net.Socket) => sockets.push(socket),
      } as postgres.Options<Record<string, never>> & { onsocket: (socket: net.Socket) => void });
      try {
        const every = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        // A view into a larger buffer, at an offset: only its own bytes go.
        const larger = Buffer.concat([Buffer.from('before'), every, Buffer.from('after')]);
        const view = larger.subarray(6, 6 + 256);
        for (let run = 0; run < 2; run++) {
          const [row] =
            await sql`SELECT ${view}::bytea AS b, ${'text beside'}::text AS t, ${null}::bytea AS n, ${Buffer.alloc(0)}::bytea AS e, ${'after'}::text AS a`;
          expect(Buffer.compare(row!.b as Buffer, every)).toBe(0);
          expect(row!.t).toBe('text beside');
          expect(row!.n).toBeNull();
          expect((row!.e as Buffer).length).toBe(0);
          expect(row!.a).toBe('after');
        }

        const large = Buffer.alloc(256 * 1024, 0xab);
        const socket = sockets.at(-1)!;
        const before = socket.bytesWritten;
        const [stored] = await sql`SELECT length(${large}::bytea) AS length`;
        expect(stored?.length).toBe(large.length);
        // Hex text would be 512 KiB and more.
        expect(socket.bytesWritten - before).toBeLessThan(large.length + 4096);
      } finally {
        await sql.end();
      }
    },
  );

  it('sends the same bytes again when postgres.js prepares a statement anew (its cached plan changed): unpatched, it sent the hex text as the value', async () => {
    const sql = postgres(await createDatabase(), { max: 1, onnotice: () => {} });
    try {
      await sql`CREATE TABLE kept (data bytea)`;
      const value = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      const find = () => sql`SELECT * FROM kept WHERE data = ${value}`;
      await sql`INSERT INTO kept VALUES (${value})`;
      expect(await find()).toHaveLength(1);
      // The prepared SELECT * now returns another row type: the server refuses it, and postgres.js prepares it again and resends the parameters it kept.
      await sql`ALTER TABLE kept ADD COLUMN extra int`;
      const rows = await find();
      expect(rows).toHaveLength(1);
      expect(Buffer.compare(rows[0]!.data as Buffer, value)).toBe(0);
    } finally {
      await sql.end();
    }
  });

  it('reads the bytea columns of a statement it prepared already in binary, not as hex text twice their size; other columns and nulls as before', async () => {
    const sockets: net.Socket[] = [];
    const sql = postgres(await createDatabase(), {
      max: 1,
      onnotice: () => {},
      onsocket: (socket: net.Socket) => sockets.push(socket),
    } as postgres.Options<Record<string, never>> & { onsocket: (socket: net.Socket) => void });
    try {
      await sql`CREATE TABLE kept (n int8, data bytea, note text)`;
      const large = Buffer.alloc(256 * 1024, 0xcd);
      large[0] = 0;
      large[large.length - 1] = 0xff;
      await sql`INSERT INTO kept VALUES (1, ${large}, 'large'), (2, NULL, 'none'), (3, ${Buffer.alloc(0)}, 'empty')`;
      const socket = sockets.at(-1)!;
      const read = () => sql`SELECT n, data, note FROM kept WHERE n >= ${0} ORDER BY n`;
      // The first run describes the statement (its columns' types are not known yet); later ones are read in binary.
      for (let run = 0; run < 3; run++) {
        const before = socket.bytesRead;
        const rows = await read();
        expect(rows.map((row) => [String(row.n), row.note])).toEqual([
          ['1', 'large'],
          ['2', 'none'],
          ['3', 'empty'],
        ]);
        expect(Buffer.isBuffer(rows[0]!.data)).toBe(true);
        expect(Buffer.compare(rows[0]!.data as Buffer, large)).toBe(0);
        expect(rows[1]!.data).toBeNull();
        expect((rows[2]!.data as Buffer).length).toBe(0);
        // Hex text would be 512 KiB and more.
        if (run > 0) expect(socket.bytesRead - before).toBeLessThan(large.length + 4096);
      }
    } finally {
      await sql.end();
    }
  });

  it('reads a column that is bytea no longer as its new type once postgres.js prepares the statement anew, and keeps a parser of bytea given by the user', async () => {
    const url = await createDatabase();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql`CREATE TABLE kept (data bytea)`;
      await sql`INSERT INTO kept VALUES (${Buffer.from('abc')})`;
      const read = () => sql`SELECT data FROM kept WHERE ${1} = 1`;
      for (let run = 0; run < 2; run++) expect((await read())[0]!.data).toEqual(Buffer.from('abc'));
      // The cached plan's result type changed: the server refuses it, and postgres.js prepares it anew.
      await sql`ALTER TABLE kept ALTER data TYPE text USING convert_from(data, 'UTF8')`;
      for (let run = 0; run < 2; run++) expect((await read())[0]!.data).toBe('abc');
      await sql`ALTER TABLE kept ALTER data TYPE bytea USING convert_to(data, 'UTF8')`;
      for (let run = 0; run < 2; run++) expect((await read())[0]!.data).toEqual(Buffer.from('abc'));
    } finally {
      await sql.end();
    }
    const parsed = postgres(url, {
      max: 1,
      onnotice: () => {},
      types: { bytes: { to: 17, from: [17], serialize: (value: Buffer) => `\\x${value.toString('hex')}`, parse: (text: string) => `parsed ${text}` } },
    });
    try {
      for (let run = 0; run < 3; run++) expect((await parsed`SELECT data FROM kept WHERE ${1} = 1`)[0]!.data).toBe('parsed \\x616263');
    } finally {
      await parsed.end();
    }
  });
  /** What `answer` settles to, or 'unanswered' after 5 s (unpatched, some of these statements never settled). */
  function within5s<T>(answer: Promise<T>): Promise<T | 'unanswered'> {
    return Promise.race([answer, new Promise<'unanswered'>((resolve) => setTimeout(resolve, 5_000, 'unanswered'))]);
  }

  /** Has the server end the session running the statement that starts with `prefix` (an ErrorResponse, 57P01, then the close), once it runs. */
  async function endSessionRunning(admin: postgres.Sql, prefix: string): Promise<void> {
    const [running] = await until(`the statement ${prefix} to run`, async () => {
      const rows = await admin`
        SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND starts_with(query, ${prefix}) AND state = 'active'`;
      return rows.length > 0 ? rows : undefined;
    });
    await admin`SELECT pg_terminate_backend(${running!.pid as number})`;
  }

  /** Starts a long statement on `sql`'s one connection and has the server end that session; resolves to how it failed. */
  async function endedMidStatement(sql: postgres.Sql, admin: postgres.Sql, tag: string): Promise<unknown> {
    const sleeping = sql`SELECT pg_sleep(30), ${tag}::text`.then(
      () => 'answered',
      (error: unknown) => error,
    );
    await endSessionRunning(admin, 'SELECT pg_sleep(30)');
    return within5s(sleeping);
  }

  it('answers the next statement on a new connection, not with the error the server sent before ending the last session (unpatched, that old error failed it)', async () => {
    const url = await createDatabase();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await sql`SELECT 1`;
      const failed = await endedMidStatement(sql, admin, 'first');
      // The server closes with a FIN after its error (a reset is possible too): either way a connection lost.
      expect(['CONNECTION_CLOSED', 'ECONNRESET']).toContain((failed as { code?: string }).code);
      const [row] = await sql`SELECT 2 AS two`;
      expect(row!.two).toBe(2);
    } finally {
      await Promise.all([sql.end(), admin.end()]);
    }
  });

  it('fails the first statement of a connection to several hosts when the server ends its session (unpatched, it waited forever)', async () => {
    const url = await createDatabase();
    // The same server twice: a URL with more than one host.
    const { host } = new URL(url);
    const twice = url.replace(host, `${host},${host}`);
    const sql = postgres(twice, { max: 1, onnotice: () => {} });
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    try {
      const failed = await endedMidStatement(sql, admin, 'first of its connection');
      // The server closes with a FIN after its error (a reset is possible too): either way a connection lost.
      expect(['CONNECTION_CLOSED', 'ECONNRESET']).toContain((failed as { code?: string }).code);
      const [row] = await sql`SELECT 2 AS two`;
      expect(row!.two).toBe(2);
    } finally {
      await Promise.all([sql.end({ timeout: 1 }), admin.end()]);
    }
  });
  it('connects anew cleanly after a connection closed with a statement written but not yet sent (unpatched, the next connection never sent its start-up and waited for its connect timeout)', async () => {
    const url = await createDatabase();
    const pool = (sockets: net.Socket[]) =>
      postgres(url, { max: 1, onnotice: () => {}, onsocket: (socket: net.Socket) => sockets.push(socket) } as postgres.Options<Record<string, never>> & {
        onsocket: (socket: net.Socket) => void;
      });
    const otherSockets: net.Socket[] = [];
    const sockets: net.Socket[] = [];
    const other = pool(otherSockets);
    const sql = pool(sockets);
    try {
      await other`SELECT 1`;
      await sql`SELECT 1`;
      // Both sockets close in one turn of the event loop, as when a server ends every session at once. Hearing of the first, a
      // statement is written to the second before its close is heard: into the connection's buffer, which would go out at the next turn.
      let lost: Promise<unknown> | null = null;
      otherSockets[0]!.once('close', () => {
        lost = sql`SELECT 2 AS two`.execute().then(
          () => 'answered',
          (error: unknown) => (error as { code?: string }).code,
        );
      });
      // libuv calls the handles' close callbacks last closed first.
      sockets[0]!.destroy();
      otherSockets[0]!.destroy();
      await until('the statement written as the socket closed', () => lost !== null);
      expect(await lost).toBe('CONNECTION_CLOSED');
      const next = sql`SELECT 3 AS three`.then(
        (rows) => rows[0]!.three as number,
        (error: unknown) => (error as { code?: string }).code,
      );
      expect(await within5s(next)).toBe(3);
    } finally {
      await Promise.all([sql.end({ timeout: 1 }), other.end({ timeout: 1 })]);
    }
  });
  it('survives a connection that gets an error from the server and closes while it reads its types, leaving no unhandled rejection (unpatched, the node crashed)', async () => {
    const url = await createDatabase();
    const { hostname, port } = new URL(url);
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    // The server's answer when it ends a session: an ErrorResponse (S, V, C, M fields), then the close.
    const fields = ['SFATAL', 'VFATAL', 'C57P01', 'Mterminating connection due to administrator command'].map((field) => Buffer.from(`${field}\0`));
    const body = Buffer.concat([...fields, Buffer.from([0])]);
    const errorResponse = Buffer.concat([Buffer.from('E'), Buffer.alloc(4), body]);
    errorResponse.writeUInt32BE(4 + body.length, 1);
    let armed = true;
    let cut = false;
    const sql = postgres(url, {
      max: 1,
      onnotice: () => {},
      socket: async () => {
        const socket = net.connect(Number(port), hostname);
        await once(socket, 'connect');
        if (!armed) return socket;
        armed = false;
        // The first time: the error comes right behind the ReadyForQuery that ends the start-up, and the socket closes as the
        // query for the array types (asked once the start-up is over) goes out. Set once connected: connect puts back write.
        const emit = socket.emit.bind(socket) as (event: string, ...args: unknown[]) => boolean;
        let started = false;
        socket.emit = ((event: string, ...args: unknown[]) => {
          const data = args[0];
          if (event === 'data' && !started && Buffer.isBuffer(data) && data.includes(Buffer.from([0x5a, 0, 0, 0, 5]))) {
            started = true;
            return emit(event, Buffer.concat([data, errorResponse]));
          }
          return emit(event, ...args);
        }) as typeof socket.emit;
        const write = socket.write.bind(socket) as (data: Buffer) => boolean;
        socket.write = ((data: Buffer) => {
          const written = write(data);
          if (started && !cut && data.includes('typcategory')) {
            cut = true;
            socket.destroy();
          }
          return written;
        }) as typeof socket.write;
        return socket;
      },
    } as postgres.Options<Record<string, never>> & { socket: () => Promise<net.Socket> });
    try {
      // The statement the connection was opened for gets the server's error.
      const first = await sql`SELECT 1 AS one`.then(
        () => 'answered',
        (error: unknown) => (error as { code?: string }).code,
      );
      expect(first).toBe('57P01');
      // A new connection answers once the one cut as it asked for its types is gone.
      await until('a new connection to answer', () =>
        sql`SELECT 2 AS two`.then(
          (rows) => rows[0]!.two === 2,
          () => false,
        ),
      );
      expect(cut).toBe(true);
      // Unhandled rejections are reported after a turn of the event loop.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
      await sql.end({ timeout: 1 });
    }
  });
  it('fails a transaction whose connection the server ended mid-statement, without an uncaught error, and goes on (unpatched, its ROLLBACK was written for no socket: an uncaught TypeError, and the pool stuck)', async () => {
    const url = await createDatabase();
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    try {
      await sql`SELECT 1`;
      const transaction = sql
        .begin(async (tx) => {
          await tx`SELECT pg_sleep(30), 'in a transaction'`;
        })
        .then(
          () => 'committed',
          (error: unknown) => (error as { code?: string }).code,
        );
      await endSessionRunning(admin, "SELECT pg_sleep(30), 'in a transaction'");
      expect(['CONNECTION_CLOSED', 'ECONNRESET']).toContain(await transaction);
      // Once everything the failure set going has run (its ROLLBACK among it): a pool with its one connection lost for good would not answer.
      await new Promise((resolve) => setImmediate(resolve));
      const next = sql`SELECT 2 AS two`.then(
        (rows) => rows[0]!.two as number,
        (error: unknown) => (error as { code?: string }).code,
      );
      expect(await within5s(next)).toBe(2);
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', record);
      await Promise.all([sql.end({ timeout: 1 }), admin.end()]);
    }
  });
});
