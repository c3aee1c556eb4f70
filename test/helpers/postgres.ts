import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, inject } from 'vitest';

/** Whether this run tests cluster mode: every server the tests start keeps its partitions in PostgreSQL. */
export const TESTING_POSTGRES = process.env.RILL_TEST_STORAGE === 'postgres';

const made: string[] = [];
let admin: postgres.Sql | null = null;

function adminConnection(): postgres.Sql {
  admin ??= postgres(`${inject('postgresServer')}/postgres`, { max: 1, onnotice: () => {} });
  return admin;
}

afterAll(async () => {
  if (admin === null) return;
  for (const name of made.splice(0)) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  admin = null;
});

/** A new, empty database on the tests' PostgreSQL server (dropped after the test file): its URL. */
export async function createDatabase(): Promise<string> {
  const name = `rill_${randomBytes(6).toString('hex')}`;
  await adminConnection().unsafe(`CREATE DATABASE ${name}`);
  made.push(name);
  return `${inject('postgresServer')}/${name}`;
}

const databasesByDataDir = new Map<string, Promise<string>>();

/** The database that stands for a data directory in a cluster-mode run: a server restarted on the same directory finds its topics again. */
export function databaseFor(dataDir: string): Promise<string> {
  let url = databasesByDataDir.get(dataDir);
  if (url === undefined) {
    url = createDatabase();
    databasesByDataDir.set(dataDir, url);
  }
  return url;
}
