import fs from 'node:fs';
import type { TestProject } from 'vitest/node';
import { PostgresServer, serverRoot } from './helpers/postgres-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The PostgreSQL server the tests share (each test makes its own databases on it): a URL without a database. */
    postgresServer: string;
  }
}

/*
 * Vitest's global setup for cluster mode: one real PostgreSQL 18 server (binaries from npm) on an
 * ephemeral loopback port in a temporary directory, for every test file; each test makes its own
 * databases (test/helpers/postgres.ts).
 */
export default async function startPostgres(project: TestProject): Promise<() => Promise<void>> {
  const root = serverRoot();
  const server = await PostgresServer.create(root, 'data');
  await server.start();
  project.provide('postgresServer', `postgres://rill@127.0.0.1:${server.port}`);
  return async () => {
    await server.stop();
    fs.rmSync(root, { recursive: true, force: true });
  };
}
