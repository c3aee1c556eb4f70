import type { Command } from 'commander';
import { type ActionRunner, subcommand, wholeNumber } from '../command-line.js';
import type { StartOptions } from '../start.js';

/*
 * The commands that work on this machine (the broker process, its data directory, a password):
 * they do not talk to a broker over the network. Each one's module is loaded when it runs, so
 * that the admin commands do not pay for loading the whole broker.
 */

/** The flags a command that finds the broker's data directory takes, given back to it as it parses them. */
function dataDirArgs(options: { config?: string; dataDir?: string }): string[] {
  return [...(options.config === undefined ? [] : ['--config', options.config]), ...(options.dataDir === undefined ? [] : ['--data-dir', options.dataDir])];
}

export function registerLocalCommands(program: Command, runner: ActionRunner): void {
  subcommand(
    program,
    'start',
    'run the broker',
    'Flags override the config file (default: config/default.json). A port of 0 picks a free port; ' +
      "the chosen ports are logged. SIGHUP reloads the config file's auth section (users, tokens, ACLs) and the TLS " +
      'certificate files without dropping connections.',
  )
    .option('--config <file>', 'the config file')
    .option('--data-dir <dir>', 'where the topics are stored')
    .option('--http-port <port>', 'HTTP and WebSocket port', wholeNumber('--http-port'))
    .option('--stomp-port <port>', 'STOMP over TCP port', wholeNumber('--stomp-port'))
    .option('--host <host>', 'the address to listen on')
    .option('--workers <n>', 'broker worker threads', wholeNumber('--workers'))
    .option('--log-level <level>', 'trace, debug, info, warn, error, fatal or silent')
    .option('--storage <backend>', 'embedded (segment files in the data directory) or postgres (cluster mode)')
    .option('--postgres-url <url>', 'the PostgreSQL database of a cluster (several hosts for fail-over)')
    .option('--node-id <id>', "this node's name in a cluster (default: generated)")
    .action(
      runner.wrap(async (options: StartOptions) => {
        const { runStart } = await import('../start.js');
        return runStart(options);
      }),
    );

  subcommand(
    program,
    'passwd',
    'hash a password for auth.users',
    'Reads a password on standard input (typed without echo at a terminal, or piped) and prints its scrypt hash, ' +
      "to paste into the config as a user's passwordHash in auth.users. The password itself is never stored.",
  )
    // runPasswd explains why it takes no arguments (the password must not be on the command line).
    .allowExcessArguments()
    .action(
      runner.wrap(async (_options: object, command: Command) => {
        const { runPasswd } = await import('../passwd.js');
        return runPasswd(command.args);
      }),
    );

  subcommand(
    program,
    'reload',
    'make the running broker reload users, tokens, ACLs and TLS certificates',
    'Tells the broker running on this machine over the data directory (named as rill start names it) to read its users, tokens, ' +
      "ACLs and TLS certificate files again (SIGHUP), without dropping connections. The broker's log says whether the reload succeeded.",
  )
    .option('--config <file>', 'the config file the broker was started with')
    .option('--data-dir <dir>', 'the data directory the broker was started with')
    .action(
      runner.wrap(async (options: { config?: string; dataDir?: string }) => {
        const { runReload } = await import('../reload.js');
        return runReload(dataDirArgs(options));
      }),
    );

  subcommand(
    program,
    'migrate',
    "convert a data directory from Rill's pre-0.2 format to Kafka's RecordBatch v2",
    'Converts a data directory written by Rill before 0.2 (its own record format), partition by partition; ' +
      'safe to interrupt and run again. The broker must be stopped.',
  )
    .option('--config <file>', 'the config file the broker is started with')
    .option('--data-dir <dir>', 'the data directory to convert')
    .action(
      runner.wrap(async (options: { config?: string; dataDir?: string }) => {
        const { runMigrate } = await import('../migrate.js');
        return runMigrate(dataDirArgs(options));
      }),
    );

  subcommand(program, 'dump-segment', "print a segment file's batches as JSON lines", "With --records, their records too, as Kafka's kafka-dump-log does.")
    .argument('<file>', 'a segment file, e.g. data/topics/orders/0/00000000000000000000.log')
    .option('--records', 'print each record too')
    .option('--from-offset <offset>', 'start at the batch holding this offset')
    .action(
      runner.wrap(async (file: string, options: { records?: boolean; fromOffset?: string }) => {
        const { runDumpSegment } = await import('../dump-segment.js');
        const args = [
          file,
          ...(options.records === true ? ['--records'] : []),
          ...(options.fromOffset === undefined ? [] : ['--from-offset', options.fromOffset]),
        ];
        return runDumpSegment(args);
      }),
    );
}
