import { defineConfig } from 'vitest/config';

/**
 * `npm run test:ha`: the fail-over tests against a local high-availability set (three etcd, three
 * Patroni-managed PostgreSQL in synchronous mode, three Rill nodes) from Debian's packages. Kept
 * out of `npm test`, which needs nothing installed by hand.
 */
export default defineConfig({
  test: {
    include: ['test/ha/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
