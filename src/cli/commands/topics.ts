import { type Command, InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { segment } from '../admin-client.js';
import { type ActionRunner, type BrokerOptions, brokerSession, repeated, subcommand, usageError, wholeNumber, withBrokerOptions } from '../command-line.js';
import { printJson, printTable } from '../output.js';

/** A topic's settings (TopicConfig in the admin API) and the values each takes. */
const TOPIC_CONFIG: Record<string, { kind: 'number'; min: number } | { kind: 'choice'; choices: string[] }> = {
  retentionMs: { kind: 'number', min: -1 },
  retentionBytes: { kind: 'number', min: -1 },
  cleanupPolicy: { kind: 'choice', choices: ['delete', 'compact'] },
  maxMessageBytes: { kind: 'number', min: 1 },
  deduplicationWindowMs: { kind: 'number', min: 0 },
  ttlMs: { kind: 'number', min: 0 },
  compression: { kind: 'choice', choices: ['none', 'gzip', 'snappy', 'lz4', 'zstd'] },
};
const CONFIG_KEYS = Object.keys(TOPIC_CONFIG).join(', ');
const CONFIG_HELP = `a topic setting, key=value (repeatable); keys: ${CONFIG_KEYS}`;

function configKey(flag: string, key: string): string {
  if (TOPIC_CONFIG[key] === undefined) throw new InvalidArgumentError(`${flag} ${key}: not a topic setting; the settings are ${CONFIG_KEYS}`);
  return key;
}

/** `--config key=value`: the key checked, the value a number where the setting is one. */
function parseConfigEntry(text: string): [string, string | number] {
  const equals = text.indexOf('=');
  if (equals <= 0) throw new InvalidArgumentError(`--config takes key=value (e.g. --config retentionMs=86400000), not "${text}"`);
  const key = configKey('--config', text.slice(0, equals));
  const value = text.slice(equals + 1);
  const setting = TOPIC_CONFIG[key]!;
  if (setting.kind === 'choice') {
    if (!setting.choices.includes(value)) throw new InvalidArgumentError(`--config ${key} takes ${setting.choices.join(', ')}, not "${value}"`);
    return [key, value];
  }
  const number = Number(value);
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(number) || number < setting.min) {
    throw new InvalidArgumentError(
      `--config ${key} takes a whole number of at least ${setting.min}${setting.min === -1 ? ' (-1: no limit)' : ''}, not "${value}"`,
    );
  }
  return [key, number];
}

const settingsRecord = z.record(z.string(), z.unknown());
const topicList = z.object({ topics: z.array(z.object({ name: z.string(), partitions: z.number().int() })) });
const createdTopic = z.object({
  name: z.string(),
  partitions: z.number().int(),
  priorityLanes: z.number().int().optional(),
  config: settingsRecord.optional(),
});
const topicDescription = z.object({
  name: z.string(),
  priorityLanes: z.number().int().optional(),
  config: settingsRecord.optional(),
  overrides: settingsRecord.optional(),
  partitions: z.array(
    z.object({
      partition: z.number().int(),
      logStartOffset: z.number().int(),
      logEndOffset: z.number().int(),
      sizeBytes: z.number().optional(),
      segments: z.number().int().optional(),
      worker: z.number().int().optional(),
    }),
  ),
});
const alteredConfig = z.object({ name: z.string(), config: settingsRecord, overrides: settingsRecord });
const grownTopic = z.object({ name: z.string(), partitions: z.number().int() });
const deletedTopic = z.object({ name: z.string(), deleted: z.literal(true) });

interface CreateOptions extends BrokerOptions {
  partitions?: number;
  priorityLanes?: number;
  config?: [string, string | number][];
}

interface AlterOptions extends BrokerOptions {
  partitions?: number;
  config?: [string, string | number][];
  resetConfig?: string[];
}

/** `rill topics list|create|describe|alter|delete`. */
export function registerTopics(program: Command, runner: ActionRunner): void {
  const topics = subcommand(program, 'topics', 'topics list|create|describe|alter|delete: manage topics');

  withBrokerOptions(subcommand(topics, 'list', 'list the topics', '--json: the broker\'s answer, {"topics":[{"name","partitions"}]}')).action(
    runner.wrap(async (options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('GET', 'v1/topics', topicList);
      if (options.json === true) printJson(raw);
      else
        printTable(
          ['NAME', 'PARTITIONS'],
          body.topics.map((t) => [t.name, t.partitions]),
        );
    }),
  );

  withBrokerOptions(
    subcommand(topics, 'create', 'create a topic', '--json: the broker\'s answer, {"name","partitions","priorityLanes","config"}')
      .argument('<name>', 'the topic: 1 to 249 of A-Z a-z 0-9 . _ -')
      .option('--partitions <n>', "partitions (per priority lane); default: the broker's topics.defaultPartitions", wholeNumber('--partitions', 1))
      .option('--priority-lanes <n>', 'priority lanes (2 to 10), each with --partitions partitions; fixed at creation', wholeNumber('--priority-lanes', 1))
      .option('--config <key=value>', CONFIG_HELP, repeated(parseConfigEntry)),
  ).action(
    runner.wrap(async (name: string, options: CreateOptions) => {
      const request = {
        name,
        ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
        ...(options.priorityLanes === undefined ? {} : { priorityLanes: options.priorityLanes }),
        ...(options.config === undefined ? {} : { config: Object.fromEntries(options.config) }),
      };
      const { raw, body } = await brokerSession(options).admin.call('POST', 'v1/topics', createdTopic, request);
      if (options.json === true) return printJson(raw);
      const lanes = (body.priorityLanes ?? 1) > 1 ? ` in ${body.priorityLanes} priority lanes` : '';
      process.stdout.write(`created topic ${body.name}: ${body.partitions} partitions${lanes}\n`);
    }),
  );

  withBrokerOptions(
    subcommand(
      topics,
      'describe',
      "show a topic's settings and partitions",
      '--json: the broker\'s answer, {"name","priorityLanes","config","overrides","partitions":[{"partition","logStartOffset","logEndOffset","sizeBytes","segments","worker"}]}',
    ).argument('<name>', 'the topic'),
  ).action(
    runner.wrap(async (name: string, options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('GET', `v1/topics/${segment(name)}`, topicDescription);
      if (options.json === true) return printJson(raw);
      printDescription(body);
    }),
  );

  withBrokerOptions(
    subcommand(
      topics,
      'alter',
      'grow a topic, or change its settings',
      '--json: {"name","partitions","config","overrides"}: partitions when grown, config and overrides when settings changed.',
    )
      .argument('<name>', 'the topic')
      .option('--partitions <n>', 'grow the topic to this many partitions (its groups rebalance; keys map to partitions anew)', wholeNumber('--partitions', 1))
      .option('--config <key=value>', CONFIG_HELP, repeated(parseConfigEntry))
      .option(
        '--reset-config <key>',
        "a setting to take the broker's default again (repeatable)",
        repeated((key) => configKey('--reset-config', key)),
      ),
  ).action(
    runner.wrap(async (name: string, options: AlterOptions, command: Command) => {
      const changes = Object.fromEntries<string | number | null>([
        ...(options.config ?? []),
        ...(options.resetConfig ?? []).map((key): [string, null] => [key, null]),
      ]);
      const both = (options.config ?? []).find(([key]) => options.resetConfig?.includes(key));
      if (both !== undefined) usageError(command, `--config ${both[0]} and --reset-config ${both[0]} contradict each other: pass one`);
      if (options.partitions === undefined && Object.keys(changes).length === 0) {
        usageError(command, 'name what to change: --partitions N, --config key=value or --reset-config key');
      }
      const { admin } = brokerSession(options);
      const result: { name: string; partitions?: number; config?: Record<string, unknown>; overrides?: Record<string, unknown> } = { name };
      if (Object.keys(changes).length > 0) {
        const { body } = await admin.call('PATCH', `v1/topics/${segment(name)}/config`, alteredConfig, changes);
        Object.assign(result, { name: body.name, config: body.config, overrides: body.overrides });
      }
      if (options.partitions !== undefined) {
        const { body } = await admin.call('POST', `v1/topics/${segment(name)}/partitions`, grownTopic, { partitions: options.partitions });
        Object.assign(result, { name: body.name, partitions: body.partitions });
      }
      if (options.json === true) return printJson(result);
      if (result.partitions !== undefined) process.stdout.write(`topic ${result.name} has ${result.partitions} partitions\n`);
      if (result.config !== undefined) printSettings(result.config, result.overrides ?? {});
    }),
  );

  withBrokerOptions(
    subcommand(topics, 'delete', 'delete a topic and everything it holds', '--json: the broker\'s answer, {"name","deleted":true}').argument(
      '<name>',
      'the topic',
    ),
  ).action(
    runner.wrap(async (name: string, options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('DELETE', `v1/topics/${segment(name)}`, deletedTopic);
      if (options.json === true) return printJson(raw);
      process.stdout.write(`deleted topic ${body.name}\n`);
    }),
  );
}

function printDescription(topic: z.output<typeof topicDescription>): void {
  const lanes = (topic.priorityLanes ?? 1) > 1 ? ` in ${topic.priorityLanes} priority lanes` : '';
  process.stdout.write(`topic ${topic.name}: ${topic.partitions.length} partitions${lanes}\n\n`);
  if (topic.config !== undefined) {
    printSettings(topic.config, topic.overrides ?? {});
    process.stdout.write('\n');
  }
  printTable(
    ['PARTITION', 'START OFFSET', 'END OFFSET', 'MESSAGES', 'BYTES', 'SEGMENTS', 'WORKER'],
    topic.partitions.map((p) => [p.partition, p.logStartOffset, p.logEndOffset, p.logEndOffset - p.logStartOffset, p.sizeBytes, p.segments, p.worker]),
  );
}

/** The settings, each marked as the topic's own or the broker's default. */
function printSettings(config: Record<string, unknown>, overrides: Record<string, unknown>): void {
  printTable(
    ['SETTING', 'VALUE', 'SOURCE'],
    Object.entries(config).map(([key, value]) => [
      key,
      typeof value === 'object' ? JSON.stringify(value) : String(value),
      key in overrides ? 'topic' : 'default',
    ]),
  );
}
