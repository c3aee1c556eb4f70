import { parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config/index.js';
import { createLogger, type Logger } from '../logging/index.js';
import { type RillServer, StartupError, startServer } from '../server/index.js';
import { runDumpSegment } from './dump-segment.js';
import { runMigrate } from './migrate.js';
import { runPasswd } from './passwd.js';
import { runReload } from './reload.js';
import { runTail } from './tail.js';

const SHUTDOWN_TIMEOUT_MS = 15_000;
/** A start-up that failed exits by itself once what had started is stopped; this long at most. */
const FAILED_START_EXIT_MS = 5_000;

/** The flag for each setting a start-up error can name. */
const SETTING_FLAGS: Record<string, string> = {
  'storage.dataDir': '--data-dir',
  'server.httpPort': '--http-port',
  'server.stompPort': '--stomp-port',
  'server.host': '--host',
};

const USAGE = `Usage:
  rill start [--config FILE] [--data-dir DIR] [--http-port N] [--stomp-port N] [--host HOST]
             [--workers N] [--log-level LEVEL]
      Runs the broker. Flags override the config file (default: config/default.json).
      A port of 0 picks a free port; the chosen ports are logged. SIGHUP reloads the config
      file's auth section (users, tokens, ACLs) and the TLS certificate files without dropping connections.

  rill passwd
      Reads a password on standard input and prints the hash to put in auth.users.

  rill reload [--config FILE] [--data-dir DIR]
      Tells the broker running on that data directory to reload users, tokens, ACLs and TLS
      certificates (SIGHUP), without dropping connections.

  rill tail <topic> [--url ws://127.0.0.1:8080/stomp] [--from earliest|latest|offset:N|timestamp:MS]
            [--partition P] [--no-follow] [--json] [--user NAME]
      Prints what a topic holds, one message a line. --no-follow exits at the end of the log.
      With authentication on: --user (or RILL_USER) and RILL_PASSWORD, or RILL_TOKEN.

  rill migrate [--config FILE] [--data-dir DIR]
      Converts a data directory written by Rill before 0.2 (its own record format) to Kafka's
      RecordBatch v2, partition by partition; safe to interrupt and run again. The broker must be stopped.

  rill dump-segment FILE [--records] [--from-offset N]
      Prints a segment file's batches (and with --records, their records) as JSON lines, as
      Kafka's kafka-dump-log does.
`;

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(rest);
    case 'tail':
      return runTail(rest);
    case 'migrate':
      return runMigrate(rest);
    case 'dump-segment':
      return runDumpSegment(rest);
    case 'passwd':
      return runPasswd(rest);
    case 'reload':
      return runReload(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`rill: unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

async function start(argv: string[]): Promise<number> {
  let overrides: ConfigOverrides;
  let configFile: string | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        'http-port': { type: 'string' },
        'stomp-port': { type: 'string' },
        host: { type: 'string' },
        workers: { type: 'string' },
        'log-level': { type: 'string' },
      },
      strict: true,
    });
    configFile = values.config;
    overrides = {
      dataDir: values['data-dir'],
      httpPort: numberFlag(values['http-port'], '--http-port'),
      stompPort: numberFlag(values['stomp-port'], '--stomp-port'),
      host: values.host,
      workers: numberFlag(values.workers, '--workers'),
      logLevel: values['log-level'],
    };
  } catch (error) {
    process.stderr.write(`rill start: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
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

function numberFlag(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`${name} takes a whole number, not "${value}"`);
  return Number(value);
}
