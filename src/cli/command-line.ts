import { type Command, InvalidArgumentError, Option } from 'commander';
import { AdminClient } from './admin-client.js';
import { type BrokerAddress, brokerAddress, DEFAULT_BROKER_URL, parseBrokerUrl } from './broker-address.js';
import { type CliCredentials, cliCredentials } from './credentials.js';
import { EXIT, exitCodeOf } from './failures.js';

/** Shown after the help of every command that talks to a broker, and after `rill --help`. */
export const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  the broker refused or failed the request (its error code and message are on stderr)
  2  bad usage: an unknown flag, a missing argument, a value a flag does not take
  3  the broker cannot be reached at --url

Environment:
  RILL_URL       the broker's address when --url is not given (default ${DEFAULT_BROKER_URL})
  RILL_USER      the user to log in as when --user is not given
  RILL_PASSWORD  the user's password (never a flag: it would show in the process list)
  RILL_TOKEN     a JSON Web Token to log in with instead of a user and password`;

/** `rill topics create`: the command's full name, for messages. */
function commandPath(command: Command): string {
  const names: string[] = [];
  for (let at: Command | null = command; at !== null; at = at.parent) names.unshift(at.name());
  return names.join(' ');
}

/**
 * Commander's usage errors, reworded to name the command and point at its help:
 * `rill topics create: Unknown option '--frob'; see rill topics create --help`.
 */
export function configureErrors(command: Command): Command {
  return command.configureOutput({
    outputError: (text, write) => write(`${commandPath(command)}: ${tidyUsageError(text)}; see ${commandPath(command)} --help\n`),
  });
}

function tidyUsageError(text: string): string {
  let message = text.trim().replace(/^error: /, '');
  // A value our own parsers refused: their message names the flag and says what it takes.
  const invalid = /^option '(?<flags>[^']+)' argument '.*' is invalid\. (?<reason>.*)$/s.exec(message);
  const longFlag = invalid?.groups?.flags?.split(/[ ,]+/).find((flag) => flag.startsWith('--'));
  if (invalid?.groups?.reason !== undefined && longFlag !== undefined && invalid.groups.reason.includes(longFlag)) message = invalid.groups.reason;
  return message.charAt(0).toUpperCase() + message.slice(1).replace(/\.$/, '');
}

/**
 * A subcommand whose usage errors name it. `summary` is its line in its parent's list of
 * commands; its own help shows `details` below it.
 */
export function subcommand(parent: Command, nameAndArgs: string, summary: string, details?: string): Command {
  const command = parent
    .command(nameAndArgs)
    .summary(summary)
    .description(details === undefined ? summary : `${summary}\n\n${details}`);
  return configureErrors(command);
}

/** Bad usage that commander cannot see (flags that only make sense together, say): exit code 2, the flag named. */
export function usageError(command: Command, message: string): never {
  command.error(message, { exitCode: EXIT.usage, code: 'rill.usage' });
}

/**
 * Runs actions and keeps the exit code of the one that ran: an action resolves to its exit code,
 * and what it throws (a refusal, an unreachable broker, a failure) is one line on stderr, named
 * after its command, with the exit code the error stands for.
 */
export class ActionRunner {
  exitCode: number = EXIT.ok;

  /** `run` resolves to its exit code, or to nothing for success (the actions that only print). */
  // biome-ignore lint/suspicious/noExplicitAny: commander hands actions untyped arguments; each action declares its own.
  wrap<A extends any[]>(run: (...args: A) => Promise<unknown>): (...args: A) => Promise<void> {
    return async (...args: A) => {
      const command = args[args.length - 1] as Command;
      try {
        const code = await run(...args);
        this.exitCode = typeof code === 'number' ? code : EXIT.ok;
      } catch (error) {
        const code = exitCodeOf(error);
        if (code === null) throw error;
        process.stderr.write(`${commandPath(command)}: ${(error as Error).message}\n`);
        this.exitCode = code;
      }
    };
  }
}

/** A parser for a flag that takes a whole number of at least `min`; its message names the flag. */
export function wholeNumber(flag: string, min = 0): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < min) {
      throw new InvalidArgumentError(`${flag} takes a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${value}"`);
    }
    return number;
  };
}

/** A parser for a flag given several times, each value parsed and collected in order. */
export function repeated<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}

/** What every command that talks to a broker takes. */
export interface BrokerOptions {
  url: string;
  user?: string;
  json?: boolean;
}

/** Adds --url, --user (and --json unless the command prints no document) and the exit codes to the help. */
export function withBrokerOptions(command: Command, { json = true }: { json?: boolean } = {}): Command {
  command
    .addOption(
      new Option('--url <url>', "the broker's HTTP address; STOMP commands use ws://HOST:PORT/stomp from it")
        .env('RILL_URL')
        .default(DEFAULT_BROKER_URL)
        .argParser(parseBrokerUrl),
    )
    .option('--user <name>', 'log in as this user, its password in RILL_PASSWORD (default: RILL_USER; or set RILL_TOKEN)');
  if (json) command.option('--json', 'machine output: JSON on stdout instead of tables');
  return command.addHelpText('after', EXIT_CODES_HELP);
}

/** The broker a command talks to, and how it logs in. */
export interface BrokerSession {
  address: BrokerAddress;
  credentials: CliCredentials;
  admin: AdminClient;
}

export function brokerSession(options: BrokerOptions): BrokerSession {
  const address = brokerAddress(options.url);
  const credentials = cliCredentials(options.user);
  return { address, credentials, admin: new AdminClient(address, credentials.authorization) };
}
