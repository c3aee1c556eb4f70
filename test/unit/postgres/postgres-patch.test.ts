import type net from 'node:net';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { postgresPatched } from '../../../src/postgres/connection.js';
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
});
