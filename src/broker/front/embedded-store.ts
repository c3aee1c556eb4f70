import path from 'node:path';
import { resolveDataDir, type RillConfig } from '../../config/index.js';
import type { Logger } from '../../logging/index.js';
import { assertCurrentDataFormat, configureOpenFiles, replayJournals, TopicCatalog } from '../../storage/index.js';
import { JOURNALS_DIRECTORY, logConfigOf } from '../log-config.js';
import type { LogStore } from '../log-store.js';
import { fitOpenFiles } from './descriptor-budget.js';
import { WorkerSupervisor } from './worker-supervisor.js';

/**
 * The default store: the broker workers (worker_threads), each owning its partitions' segment
 * files behind a write-ahead journal, in the data directory.
 */
export class EmbeddedLogStore extends WorkerSupervisor implements LogStore {
  readonly kind = 'embedded';

  private constructor(
    readonly topicStore: TopicCatalog,
    config: RillConfig,
    logger: Logger,
  ) {
    super({ storage: config.storage, logLevel: config.log.level }, config.brokers, logger);
  }

  /**
   * Replays the journals the broker workers cannot replay themselves (after a crash, whatever the
   * segments lost goes back into them; see replayJournals); the workers start with `start()`.
   */
  static async open(config: RillConfig, logger: Logger): Promise<EmbeddedLogStore> {
    const dataDir = resolveDataDir(config);
    // Before anything opens a log or replays a journal: the new code would cut old batches off as corrupt.
    assertCurrentDataFormat(dataDir, config.storage.dataDir);
    // Every thread's cache of open segment files (the workers', and this thread's for the journal
    // replay), fitted to the process's open-file limit (descriptor-budget.ts).
    const openFilesPerWorker = fitOpenFiles(config.storage.openFilesPerWorker, config.brokers.workers, logger);
    configureOpenFiles(openFilesPerWorker);
    const fitted: RillConfig = { ...config, storage: { ...config.storage, openFilesPerWorker } };
    const replayStarted = performance.now();
    await replayJournals(path.join(dataDir, JOURNALS_DIRECTORY), dataDir, logConfigOf(fitted.storage), logger, fitted.brokers.workers);
    logger.debug({ ms: Math.round(performance.now() - replayStarted) }, 'journals replayed');
    return new EmbeddedLogStore(new TopicCatalog(dataDir), fitted, logger);
  }

  onRestarted(listener: (worker: number) => void): void {
    this.on('worker-restarted', listener);
  }
}
