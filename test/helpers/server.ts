import { afterEach } from 'vitest';
import { databaseFor, TESTING_POSTGRES } from './postgres.js';
import { parseConfig, type RillConfig, type RillConfigInput } from '../../src/config/index.js';
import { createLogger } from '../../src/logging/index.js';
import { startServer, type RillServer } from '../../src/server/index.js';
import { useTempDirs } from './temp-dir.js';

export interface TestServer extends RillServer {
  dataDir: string;
  wsUrl: string;
  /** The configuration it was started with. */
  config: RillConfig;
}

type Overrides = { [K in keyof RillConfigInput]?: Partial<NonNullable<RillConfigInput[K]>> };

/** Starts servers on ephemeral 127.0.0.1 ports over temporary data directories; all are closed after each test. */
export function useServers(): {
  start: (overrides?: Overrides, dataDir?: string) => Promise<TestServer>;
  tempDir: () => string;
} {
  const tempDir = useTempDirs();
  const running: RillServer[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((server) => server.close()));
  });
  return {
    tempDir,
    start: async (overrides = {}, dataDir = tempDir()) => {
      // A cluster-mode run (RILL_TEST_STORAGE=postgres): the same tests, the partitions in PostgreSQL.
      const backend =
        TESTING_POSTGRES && overrides.storage?.backend === undefined ? { backend: 'postgres' as const, postgres: { url: await databaseFor(dataDir) } } : {};
      const config = parseConfig({
        ...overrides,
        server: { host: '127.0.0.1', httpPort: 0, stompPort: 0, ...overrides.server },
        storage: { dataDir, ...backend, ...overrides.storage },
        brokers: { workers: 2, ...overrides.brokers },
        log: { level: (process.env.RILL_TEST_LOG_LEVEL ?? 'silent') as 'silent' },
      });
      const server = await startServer(config, createLogger(config.log.level));
      running.push(server);
      return Object.assign(server, { dataDir, wsUrl: `ws://127.0.0.1:${server.httpPort}/stomp`, config });
    },
  };
}

/** Messages a topic holds, read from the broker itself (no client rights involved); 0 for no such topic. */
export async function storedMessages(server: RillServer, name: string): Promise<number> {
  const topic = server.broker.topics.get(name);
  if (topic === undefined) return 0;
  let total = 0;
  for (let partition = 0; partition < topic.partitions; partition++) {
    const { logStartOffset, logEndOffset } = await server.broker.offsets(topic, partition);
    total += logEndOffset - logStartOffset;
  }
  return total;
}
