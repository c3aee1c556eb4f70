import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config/index.js';
import { createLogger, type Logger } from '../logging/index.js';
import { type RillServer, StartupError, startServer } from '../server/index.js';

const SHUTDOWN_TIMEOUT_MS = 15_000;
/** A start-up that failed exits by itself once what had started is stopped; this long at most. */
const FAILED_START_EXIT_MS = 5_000;

/** The flag for each setting a start-up error can name. */
const SETTING_FLAGS: Record<string, string> = {
  'storage.dataDir': '--data-dir',
  'storage.postgres.url': '--postgres-url',
  'storage.nodeId': '--node-id',
  'server.httpPort': '--http-port',
  'server.stompPort': '--stomp-port',
  'server.host': '--host',
};

/** `rill start`'s flags, as parsed (the numbers already checked to be whole numbers): the config file, and the settings that override it. */
export type StartOptions = Omit<ConfigOverrides, 'storageBackend'> & { config?: string; storage?: ConfigOverrides['storageBackend'] };

/** `rill start`: runs the broker until a signal stops it (the promise never resolves), or resolves to the exit code of a failed start. */
export async function runStart(options: StartOptions): Promise<number> {
  const configFile = options.config;
  const overrides: ConfigOverrides = {
    dataDir: options.dataDir,
    httpPort: options.httpPort,
    stompPort: options.stompPort,
    host: options.host,
    workers: options.workers,
    logLevel: options.logLevel,
    storageBackend: options.storage,
    postgresUrl: options.postgresUrl,
    nodeId: options.nodeId,
  };
  let config;
  try {
    config = loadConfig(configFile, overrides);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`rill: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger(config.log.level, { component: 'rill' });
  let server: RillServer;
  try {
    server = await startServer(config, logger);
  } catch (error) {
    return startFailed(error, logger);
  }
  logger.info({ httpPort: server.httpPort, stompPort: server.stompPort, httpsPort: server.httpsPort, stompTlsPort: server.stompTlsPort }, 'ready');
  // SIGHUP: users, tokens, ACLs and TLS certificate files are read again; other settings need a restart.
  process.on('SIGHUP', () => {
    try {
      server.reload(loadConfig(configFile, overrides));
      logger.info({ configFile: configFile ?? 'default' }, 'reloaded users, tokens, ACLs and TLS certificates');
    } catch (error) {
      const reason = error instanceof ConfigError || error instanceof StartupError ? error.message : error;
      logger.error({ err: reason }, 'reload failed: the previous users, tokens, ACLs and certificates stay in force');
    }
  });
  // On SIGTERM, SIGINT (and the other termination signals) or an uncaught error: close, then
  // exit (0 after a signal, 1 after an error). A second signal, or a close that takes longer than
  // the delay, exits at once.
  closeWithGrace(
    {
      delay: SHUTDOWN_TIMEOUT_MS,
      logger: { error: (message: unknown) => logger.error(message instanceof Error ? { err: message } : { detail: message }, 'shutdown') },
    },
    async ({ signal, err }) => {
      if (err !== undefined) logger.error({ err }, 'unexpected error: shutting down');
      else logger.info({ signal }, 'shutting down');
      await server.close();
    },
  );
  return new Promise<number>(() => {});
}

/** One line on stderr naming the fix (the stack, for errors that are not the operator's, goes to the log); exit code 1. */
function startFailed(error: unknown, logger: Logger): number {
  if (error instanceof StartupError) {
    const flag = SETTING_FLAGS[error.setting];
    const fixes = `${error.alternative === undefined ? '' : `${error.alternative}, or `}${flag === undefined ? '' : `pass ${flag} or `}set ${error.setting}`;
    process.stderr.write(`rill: ${error.problem}: ${fixes}${error.note === undefined ? '' : ` ${error.note}`}\n`);
  } else {
    logger.error({ err: error }, 'start-up failed');
    process.stderr.write(`rill: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  // startServer stops what it had started, so the process exits on its own; should anything be left
  // running (a part that could not be stopped), it does not keep a failed broker alive.
  setTimeout(() => process.exit(1), FAILED_START_EXIT_MS).unref();
  return 1;
}
