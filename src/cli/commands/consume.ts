import type { Command } from 'commander';
import { type ActionRunner, type BrokerOptions, brokerSession, subcommand, wholeNumber, withBrokerOptions } from '../command-line.js';
import { consumeGroup } from '../group-consumer.js';
import { parseFrom, tailTopic } from '../tail.js';

interface TailOptions extends BrokerOptions {
  from: string;
  partition?: number;
  follow: boolean;
}

interface ConsumeOptions extends BrokerOptions {
  group?: string;
  from?: string;
  count?: number;
  follow?: boolean;
}

const FROM_HELP = 'where to start: earliest, latest, offset:N, timestamp:MS or an ISO date';

/** `rill tail` and `rill consume`: reading a topic over STOMP, one message a line. */
export function registerConsume(program: Command, runner: ActionRunner): void {
  const tail = subcommand(
    program,
    'tail',
    'print what a topic holds, one message a line',
    'Each line is `topic/partition@offset key body`; with --json, one JSON object a line ' +
      '{"topic","partition","offset","key","messageID","timestamp","message"}. Follows the topic until interrupted, reconnecting (and resuming after the last message printed) when the broker restarts; ' +
      '--no-follow exits at the end of the log as it was at the start.',
  )
    .argument('<topic>', 'the topic to read')
    .option('--from <position>', FROM_HELP, parseFrom, 'latest')
    .option('--partition <n>', 'read only this partition', wholeNumber('--partition'))
    .option('--no-follow', 'exit at the end of the log as seen at the start');
  withBrokerOptions(tail).action(
    runner.wrap((topic: string, options: TailOptions) =>
      tailTopic({
        session: brokerSession(options),
        topic,
        from: options.from,
        partition: options.partition,
        follow: options.follow,
        json: options.json === true,
        name: 'rill tail',
      }),
    ),
  );

  const consume = subcommand(
    program,
    'consume',
    "print a topic's messages, alone or as a member of a consumer group",
    'Prints one message a line as rill tail does (--json: one JSON object a line). Without --group it reads the topic as a tail ' +
      'does; with --group it joins the consumer group as a member, gets the partitions assigned to it and ACKs each message once printed, ' +
      "so the group's committed offsets move on (with --from, the group's offsets are reset there first: the group must have no members). " +
      'Stops after --count messages, or with --no-follow at the end of the log as seen at the start.',
  )
    .argument('<topic>', 'the topic to read')
    .option('--group <group>', 'consume as a member of this consumer group')
    .option('--from <position>', `${FROM_HELP} (default: latest; with --group: the group's committed offsets)`, parseFrom)
    .option('--count <n>', 'exit after this many messages', wholeNumber('--count', 1))
    .option('--follow', 'go on after the end of the log (the default)')
    .option('--no-follow', 'exit at the end of the log as seen at the start');
  withBrokerOptions(consume).action(
    runner.wrap((topic: string, options: ConsumeOptions) => {
      const session = brokerSession(options);
      const shared = { session, topic, follow: options.follow !== false, count: options.count, json: options.json === true, name: 'rill consume' };
      if (options.group !== undefined) return consumeGroup({ ...shared, group: options.group, from: options.from });
      return tailTopic({ ...shared, from: options.from ?? 'latest' });
    }),
  );
}
