import type { Command } from 'commander';
import { z } from 'zod';
import { segment } from '../admin-client.js';
import { type ActionRunner, type BrokerOptions, brokerSession, subcommand, withBrokerOptions } from '../command-line.js';
import { parseResetTarget, type ResetTarget } from '../offset-target.js';
import { printJson, printTable } from '../output.js';

const topicPartition = { topic: z.string(), partition: z.number().int() };
const groupList = z.object({ groups: z.array(z.object({ group: z.string(), generation: z.number().int(), members: z.number().int() })) });
const groupDescription = z.object({
  group: z.string(),
  generation: z.number().int(),
  settings: z.record(z.string(), z.unknown()),
  members: z.array(
    z.object({
      member: z.string(),
      instanceId: z.string().nullable().optional(),
      topics: z.array(z.string()),
      assignment: z.array(z.object(topicPartition)),
    }),
  ),
  partitions: z
    .array(z.object({ ...topicPartition, committedOffset: z.number().int().nullable(), logEndOffset: z.number().int(), lag: z.number().int() }))
    .optional(),
});
const resetOffsets = z.object({
  group: z.string(),
  offsets: z.array(z.object({ ...topicPartition, offset: z.number().int() })),
  dryRun: z.boolean().optional(),
});
const deletedGroup = z.object({ group: z.string(), deleted: z.literal(true) });

interface ResetOptions extends BrokerOptions {
  to: ResetTarget;
  topic?: string;
  dryRun?: boolean;
}

/** `rill groups list|describe|reset|delete`. */
export function registerGroups(program: Command, runner: ActionRunner): void {
  const groups = subcommand(program, 'groups', 'groups list|describe|reset|delete: manage consumer groups and their offsets');

  withBrokerOptions(
    subcommand(groups, 'list', 'list the consumer groups', '--json: the broker\'s answer, {"groups":[{"group","generation","members"}]}'),
  ).action(
    runner.wrap(async (options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('GET', 'v1/groups', groupList);
      if (options.json === true) return printJson(raw);
      printTable(
        ['GROUP', 'GENERATION', 'MEMBERS'],
        body.groups.map((g) => [g.group, g.generation, g.members]),
      );
    }),
  );

  withBrokerOptions(
    subcommand(
      groups,
      'describe',
      "show a group's settings, members, committed offsets and lag",
      '--json: the broker\'s answer, {"group","generation","settings","members":[...],"partitions":[{"topic","partition","committedOffset","logEndOffset","lag"}]}',
    ).argument('<group>', 'the consumer group'),
  ).action(
    runner.wrap(async (group: string, options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('GET', `v1/groups/${segment(group)}`, groupDescription);
      if (options.json === true) return printJson(raw);
      printDescription(body);
    }),
  );

  withBrokerOptions(
    subcommand(
      groups,
      'reset',
      "move a group's committed offsets",
      "Moves them in every partition of the group's topics (or of --topic); the group must have no members. " +
        'With --dry-run nothing moves: it shows where the offsets would go. --json: the broker\'s answer, {"group","offsets":[{"topic","partition","offset"}],"dryRun"}',
    )
      .argument('<group>', 'the consumer group')
      .requiredOption('--to <target>', 'earliest, latest, offset:N, timestamp:MS or an ISO date (the first message at or after it)', parseResetTarget)
      .option('--topic <topic>', "only this topic's partitions")
      .option('--dry-run', 'show the offsets the reset would set, and change nothing'),
  ).action(
    runner.wrap(async (group: string, options: ResetOptions) => {
      const request = {
        target: options.to,
        ...(options.topic === undefined ? {} : { topic: options.topic }),
        // Only when asked: a plain reset stays the request every broker version takes.
        ...(options.dryRun === true ? { dryRun: true } : {}),
      };
      const { raw, body } = await brokerSession(options).admin.call('POST', `v1/groups/${segment(group)}/offsets/reset`, resetOffsets, request);
      if (options.json === true) return printJson(raw);
      process.stdout.write(
        options.dryRun === true
          ? `dry run: the offsets of group ${body.group} would move to (nothing changed)\n`
          : `the offsets of group ${body.group} moved to\n`,
      );
      printTable(
        ['TOPIC', 'PARTITION', 'OFFSET'],
        body.offsets.map((o) => [o.topic, o.partition, o.offset]),
      );
    }),
  );

  withBrokerOptions(
    subcommand(
      groups,
      'delete',
      'delete a consumer group and its committed offsets',
      'The group must have no members. --json: the broker\'s answer, {"group","deleted":true}',
    ).argument('<group>', 'the consumer group'),
  ).action(
    runner.wrap(async (group: string, options: BrokerOptions) => {
      const { raw, body } = await brokerSession(options).admin.call('DELETE', `v1/groups/${segment(group)}`, deletedGroup);
      if (options.json === true) return printJson(raw);
      process.stdout.write(`deleted group ${body.group}\n`);
    }),
  );
}

function printDescription(group: z.output<typeof groupDescription>): void {
  const settings = Object.entries(group.settings)
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(' ');
  process.stdout.write(`group ${group.group}: generation ${group.generation}, ${group.members.length} members\nsettings: ${settings}\n\n`);
  printTable(
    ['MEMBER', 'INSTANCE', 'TOPICS', 'ASSIGNMENT'],
    group.members.map((m) => [m.member, m.instanceId, m.topics.join(','), m.assignment.map((a) => `${a.topic}/${a.partition}`).join(',')]),
  );
  if (group.partitions === undefined) return;
  process.stdout.write('\n');
  printTable(
    ['TOPIC', 'PARTITION', 'COMMITTED', 'END OFFSET', 'LAG'],
    group.partitions.map((p) => [p.topic, p.partition, p.committedOffset, p.logEndOffset, p.lag]),
  );
}
