import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ActionRunner, type BrokerOptions, brokerSession, repeated, subcommand, usageError, withBrokerOptions } from '../command-line.js';
import { EXIT } from '../failures.js';
import { printJson, progress } from '../output.js';
import { type OutgoingMessage, WindowedPublisher } from '../publisher.js';

/** Messages awaiting their receipt at once: enough to keep the broker's group commit busy, few enough to bound memory. */
const WINDOW = 100;
/** Headers the command sets itself, or that would change how the body is read (a `key` header makes it a raw body). */
const RESERVED_HEADERS = new Set(['destination', 'receipt', 'content-length', 'content-type', 'transaction', 'key', 'message-id']);

interface ProduceOptions extends BrokerOptions {
  file?: string;
  key?: string;
  keyField?: string;
  header?: [string, string][];
}

function parseHeader(value: string): [string, string] {
  const colon = value.indexOf(':');
  if (colon <= 0) throw new InvalidArgumentError(`--header takes name:value (e.g. --header source:import), not "${value}"`);
  const name = value.slice(0, colon).trim().toLowerCase();
  if (RESERVED_HEADERS.has(name))
    throw new InvalidArgumentError(`--header ${name} is set by rill produce itself${name === 'key' ? ': use --key or --key-field' : ''}`);
  return [name, value.slice(colon + 1)];
}

/** A line that is JSON is published as that JSON value; any other line as a string. */
function lineValue(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return line;
  }
}

export function registerProduce(program: Command, runner: ActionRunner): void {
  const command = subcommand(
    program,
    'produce',
    'publish each line of standard input (or --file) as a message',
    'Each line is one message, sent with a receipt (many at once). A line that is JSON is sent as that JSON value, ' +
      'any other as a string, in the canonical body {"messageID","key","message","timestamp"} (messageID: a new UUID a line). ' +
      'Empty lines are skipped. When the connection drops, what has no receipt is sent again under the same messageID (the broker stores it once). ' +
      'Prints a summary; with --json {"messages","bytes","seconds","failed"}. Exits 1 if any message failed.',
  )
    .argument('<topic>', 'the topic to publish to (created on first use unless auto-create is off)')
    .option('--file <file>', 'read the lines from this file instead of standard input')
    .option('--key <key>', 'the key of every message (picks its partition)')
    .addOption(new Option('--key-field <name>', "each line is a JSON object: its field NAME is the message's key").conflicts('key'))
    .option('--header <name:value>', 'a header kept with every message (repeatable)', repeated(parseHeader));
  withBrokerOptions(command).action(runner.wrap((topic: string, options: ProduceOptions, self: Command) => produce(topic, options, self)));
}

async function produce(topic: string, options: ProduceOptions, command: Command): Promise<number> {
  if (options.file !== undefined) {
    try {
      fs.accessSync(options.file, fs.constants.R_OK);
    } catch (error) {
      usageError(command, `--file ${options.file} cannot be read (${(error as NodeJS.ErrnoException).code}): name a readable file, or pipe the lines in`);
    }
  }
  const session = brokerSession(options);
  const headers = Object.fromEntries(options.header ?? []);
  const bar = progress('produce', null, 'messages');
  const publisher = new WindowedPublisher(session, topic, WINDOW, 'rill produce', (settled) => bar.update(settled));
  await publisher.connect();
  const started = performance.now();
  const input = options.file === undefined ? process.stdin : fs.createReadStream(options.file);
  const lines = readline.createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (line === '') continue;
      if (!(await publisher.send(canonicalMessage(line, options, headers)))) break;
    }
  } finally {
    lines.close();
    input.destroy();
  }
  const outcome = await publisher.close();
  bar.stop();
  const seconds = (performance.now() - started) / 1000;
  if (options.json === true) {
    printJson({ messages: outcome.stored, bytes: outcome.storedBytes, seconds: round(seconds), failed: outcome.failed });
  } else {
    const failed = outcome.failed === 0 ? '' : `; ${outcome.failed} failed`;
    process.stdout.write(
      `produced ${outcome.stored} messages (${outcome.storedBytes} bytes) to ${topic} in ${round(seconds)} s: ${Math.round(outcome.stored / Math.max(seconds, 0.001))} msgs/s${failed}\n`,
    );
  }
  if (outcome.stoppedBy !== null) throw outcome.stoppedBy;
  return outcome.failed === 0 ? EXIT.ok : EXIT.refused;
}

function canonicalMessage(line: string, options: ProduceOptions, headers: Record<string, string>): OutgoingMessage {
  const message = lineValue(line);
  let key: string | number | null = options.key ?? null;
  if (options.keyField !== undefined && message !== null && typeof message === 'object' && !Array.isArray(message)) {
    const field = (message as Record<string, unknown>)[options.keyField];
    if (typeof field === 'string' || typeof field === 'number') key = field;
  }
  const messageID = randomUUID();
  return { messageID, body: JSON.stringify({ messageID, key, message, timestamp: Date.now() }), headers };
}

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
