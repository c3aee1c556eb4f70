import type { IMessage } from '@stomp/stompjs';
import { z } from 'zod';
import { segment } from './admin-client.js';
import type { BrokerSession } from './command-line.js';
import { EXIT } from './failures.js';
import { resetTarget } from './offset-target.js';
import { ConnectionWatch, stompClient } from './stomp-client.js';
import { partitionRanges, printMessage } from './tail.js';

/** Without --follow: how often the group's committed offsets are read to see whether the end is reached. */
const LAG_POLL_MS = 250;
/** A --no-follow consume that lost the broker gives up after this long without it. */
/** The broker's default credit window (stomp.prefetch); less when --count asks for fewer messages. */
const MAX_PREFETCH = 1000;

const groupLag = z.object({ partitions: z.array(z.object({ topic: z.string(), partition: z.number().int(), offset: z.number().int() })) });
const anything = z.unknown();

export interface GroupConsumeOptions {
  session: BrokerSession;
  topic: string;
  group: string;
  /** Move the group's offsets here before joining (the SUBSCRIBE `from` syntax, as parseFrom returns it). */
  from?: string;
  follow: boolean;
  count?: number;
  json: boolean;
  /** The command, for the notes on stderr. */
  name: string;
}

/**
 * Joins a consumer group as a member (SUBSCRIBE /group/<group>/<topic>, ack client-individual)
 * and prints the messages of the partitions it is assigned, ACKing each once printed, so the
 * group's committed offsets follow. Stops after `count` messages, or without `follow` once the
 * group has consumed the topic up to its end as seen at the start; leaving (DISCONNECT) makes
 * the member leave the group at once. Resolves to the exit code; rejects with the failure to report.
 */
export async function consumeGroup(options: GroupConsumeOptions): Promise<number> {
  const { session, topic, group } = options;
  if (options.from !== undefined) {
    // The group's offsets move before it is joined (the broker refuses while it has members).
    await session.admin.call('POST', 'v1/groups', anything, { group });
    await session.admin.call('POST', `v1/groups/${segment(group)}/offsets/reset`, anything, { topic, target: resetTarget(options.from) });
  }
  /** Without `follow`: each partition's end as seen now, until the group has consumed up to it. */
  const remaining = options.follow
    ? null
    : new Map((await partitionRanges(session, topic)).filter((r) => r.logEndOffset > 0).map((r) => [r.partition, r.logEndOffset]));
  if (remaining !== null && remaining.size === 0) return EXIT.ok;

  const client = stompClient(session, { reconnect: true });
  /** Per partition, the offset after the last message printed: a redelivery of one printed already (its ACK lost with a connection) is not printed again. */
  const next = new Map<number, number>();
  let printed = 0;
  let lagPoll: NodeJS.Timeout | undefined;

  return new Promise<number>((resolve, reject) => {
    const watch = new ConnectionWatch(client, session, { name: options.name, follow: options.follow, reject, onEnd: () => clearInterval(lagPoll) });
    const end = (outcome: () => void): void => watch.end(outcome);
    const reached = (partition: number, offset: number): void => {
      if (remaining === null || offset < (remaining.get(partition) ?? Number.POSITIVE_INFINITY)) return;
      remaining.delete(partition);
      if (remaining.size === 0) end(() => resolve(EXIT.ok));
    };
    const onMessage = (message: IMessage): void => {
      if (watch.ended) return;
      const partition = Number(message.headers.partition);
      const offset = Number(message.headers.offset);
      if (offset >= (next.get(partition) ?? 0)) {
        printMessage(message, options.json);
        next.set(partition, offset + 1);
        printed++;
      }
      message.ack();
      if (options.count !== undefined && printed >= options.count) return end(() => resolve(EXIT.ok));
      reached(partition, offset + 1);
    };
    // Partitions other members consume, or that the group had consumed already, end by its committed offsets.
    const pollLag = (): void => {
      session.admin.call('GET', `v1/groups/${segment(group)}/lag`, groupLag).then(
        ({ body }) => {
          for (const row of body.partitions) if (row.topic === topic) reached(row.partition, row.offset);
        },
        () => {},
      );
    };
    client.onConnect = () => {
      const receipt = `joined-${watch.connected(`joining group ${group} again`)}`;
      if (remaining !== null && lagPoll === undefined) {
        client.watchForReceipt(receipt, () => {
          pollLag();
          lagPoll = setInterval(pollLag, LAG_POLL_MS);
        });
      }
      const prefetch = Math.min(options.count ?? MAX_PREFETCH, MAX_PREFETCH);
      client.subscribe(`/group/${group}/${topic}`, onMessage, { ack: 'client-individual', 'prefetch-count': String(prefetch), receipt });
    };
    client.activate();
  });
}
