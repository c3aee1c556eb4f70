import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { ActionRunner, configureErrors, EXIT_CODES_HELP } from './command-line.js';
import { registerBench } from './commands/bench.js';
import { registerConsume } from './commands/consume.js';
import { registerGroups } from './commands/groups.js';
import { registerLocalCommands } from './commands/local.js';
import { registerProduce } from './commands/produce.js';
import { registerTopics } from './commands/topics.js';
import { EXIT } from './failures.js';

/** The version in package.json (two levels up from src/cli/ and from dist/cli/ alike). */
function packageVersion(): string {
  const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as unknown;
  return z.object({ version: z.string() }).parse(packageJson).version;
}

/** Every command, parsed by commander; the actions' exit codes land in `runner`. */
function buildProgram(runner: ActionRunner): Command {
  const program = new Command('rill')
    .description('Rill: a Kafka-like message broker with STOMP over WebSocket and TCP as its front door')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show the help (of a command: rill help <command>, or rill <command> --help)')
    // Commander's exits (help, version, usage errors) come back as exceptions instead of process.exit, so that main chooses the exit code.
    .exitOverride()
    .showSuggestionAfterError(true);
  configureErrors(program);
  program.addHelpText(
    'after',
    EXIT_CODES_HELP.replace('Exit codes:', 'Exit codes (of the commands that talk to a broker; an unknown command exits 1, as it always has):'),
  );
  registerLocalCommands(program, runner);
  registerConsume(program, runner);
  registerProduce(program, runner);
  registerTopics(program, runner);
  registerGroups(program, runner);
  registerBench(program, runner);
  return program;
}

/** Exit codes for commander's own exits: help and version are successes, the rest is bad usage. */
function commanderExitCode(error: CommanderError): number {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
  // `rill help` shows the help as asked (0); `rill topics` without a subcommand shows it as an error (1 from commander).
  if (error.code === 'commander.help') return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  return EXIT.usage;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const runner = new ActionRunner();
  const program = buildProgram(runner);
  const [command] = argv;
  if (command === undefined) {
    program.outputHelp();
    return EXIT.refused;
  }
  // An unknown command exits 1 with the help, as rill always has (scripts may rely on it); unknown subcommands of topics and groups are bad usage (2).
  if (!command.startsWith('-') && command !== 'help' && !program.commands.some((c) => c.name() === command)) {
    process.stderr.write(`rill: unknown command "${command}"\n\n`);
    program.outputHelp({ error: true });
    return EXIT.refused;
  }
  // `rill tail ... | head` closes the pipe early: that is the reader being done, not an error (the broker's own log is left alone).
  if (command !== 'start') {
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(runner.exitCode);
      throw error;
    });
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return commanderExitCode(error);
    throw error;
  }
  return runner.exitCode;
}
