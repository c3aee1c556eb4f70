import type { IMessage, StompHeaders } from '@stomp/stompjs';
import { InvalidArgumentError } from 'commander';
import { z } from 'zod';
import { segment } from './admin-client.js';
import type { BrokerSession } from './command-line.js';
import { BrokerRefusedError, CommandFailedError, EXIT } from './failures.js';
import { resetTarget } from './offset-target.js';
import { ConnectionWatch, stompClient, topicDestination } from './stomp-client.js';

/** A --no-follow tail that lost the broker gives up after this long without it (a following one never does). */

const topicDescription = z.object({
  partitions: z.array(z.object({ partition: z.number().int(), logStartOffset: z.number().int(), logEndOffset: z.number().int() })),
});

export type PartitionRange = z.output<typeof topicDescription>['partitions'][number];

/** A topic's partitions and where each begins and ends now (GET /v1/topics/<topic>); a missing topic is the command's failure. */
export async function partitionRanges(session: BrokerSession, topic: string): Promise<PartitionRange[]> {
  try {
    return (await session.admin.call('GET', `v1/topics/${segment(topic)}`, topicDescription)).body.partitions;
  } catch (error) {
    if (error instanceof BrokerRefusedError && error.code === 'unknown-topic')
      throw new CommandFailedError(`topic "${topic}" does not exist (${error.message})`);
    throw error;
  }
}

/**
 * The --from option's check, giving what the SUBSCRIBE `from` header takes (docs/protocol.md,
 * Reading a topic): earliest, latest, offset:N (or N), timestamp:MS, timestamp:DATE (or an ISO date).
 */
export function parseFrom(value: string): string {
  if (/^\d{1,16}$/.test(value)) return `offset:${value}`;
  const target = resetTarget(value);
  if (target === null)
    throw new InvalidArgumentError(`--from takes earliest, latest, offset:N, timestamp:MS or an ISO date (e.g. 2024-05-01T12:00:00Z), not "${value}"`);
  return target.to === 'timestamp' && !value.startsWith('timestamp:') ? `timestamp:${value}` : value;
}

/** Where a tail starting `from` begins in a partition, when that can be known beforehand (null for a timestamp). */
function startOffset(from: string, range: PartitionRange): number | null {
  if (from === 'latest') return range.logEndOffset;
  if (from === 'earliest') return range.logStartOffset;
  if (from.startsWith('offset:')) return Math.max(range.logStartOffset, Number(from.slice('offset:'.length)));
  return null;
}

export interface TailOptions {
  session: BrokerSession;
  topic: string;
  /** The SUBSCRIBE `from` header, as parseFrom returns it. */
  from: string;
  partition?: number;
  /** Go on printing what is stored after the end of the log as seen at the start. */
  follow: boolean;
  /** Stop after this many messages. */
  count?: number;
  json: boolean;
  /** The command, for the notes on stderr: `rill tail`. */
  name: string;
}

/**
 * Prints a topic's messages (SUBSCRIBE /topic/<topic>), one a line, until the end of the log as
 * seen at the start (without `follow`), or `count` messages, or for ever. When the connection
 * drops (the broker restarted), it connects again and resumes each partition at the offset after
 * the last one it printed, so that nothing is printed twice and nothing is skipped. Resolves to
 * the exit code; rejects with the failure to report.
 */
export async function tailTopic(options: TailOptions): Promise<number> {
  const { session, topic, from } = options;
  let ranges = options.follow ? await optionalRanges(session, topic) : await partitionRanges(session, topic);
  // A topic that does not exist yet (a following tail creates it) has no partitions to check against.
  if (ranges !== null && ranges.length > 0 && options.partition !== undefined) {
    const partition = options.partition;
    const range = ranges.find((r) => r.partition === partition);
    if (range === undefined)
      throw new CommandFailedError(`topic "${topic}" has no partition ${partition} (it has ${ranges.length}): pass --partition 0 to ${ranges.length - 1}`);
    ranges = [range];
  }
  /** Without `follow`: the partitions not read to their end yet, and that end. */
  const remaining = options.follow || ranges === null ? null : pendingPartitions(ranges, from);
  if (remaining !== null && remaining.size === 0) return EXIT.ok;
  /** Where a partition that printed nothing yet starts after a reconnect: a `latest` tail begins at the end as it was when it started. */
  const resumeStart = (partition: number): string => {
    if (from !== 'latest' || ranges === null) return from;
    return `offset:${ranges.find((r) => r.partition === partition)?.logEndOffset ?? 0}`;
  };

  const client = stompClient(session, { reconnect: true });
  /** Per partition, the offset after the last message printed. */
  const next = new Map<number, number>();
  let printed = 0;

  return new Promise<number>((resolve, reject) => {
    const watch = new ConnectionWatch(client, session, { name: options.name, follow: options.follow, reject });
    const end = (outcome: () => void): void => watch.end(outcome);
    const onMessage = (message: IMessage): void => {
      if (watch.ended) return;
      const partition = Number(message.headers.partition);
      const offset = Number(message.headers.offset);
      if (offset < (next.get(partition) ?? 0)) return;
      printMessage(message, options.json);
      next.set(partition, offset + 1);
      printed++;
      if (options.count !== undefined && printed >= options.count) return end(() => resolve(EXIT.ok));
      if (remaining !== null && offset + 1 >= (remaining.get(partition) ?? 0)) {
        remaining.delete(partition);
        if (remaining.size === 0) end(() => resolve(EXIT.ok));
      }
    };
    const subscribe = (headers: StompHeaders): void => {
      client.subscribe(topicDestination(topic), onMessage, { ack: 'auto', ...headers });
    };
    /** After a reconnect: one subscription per partition, each from where it left off (a SUBSCRIBE's `from` applies to all the partitions it reads). */
    const resume = async (connection: number): Promise<void> => {
      const partitions = options.partition !== undefined ? [options.partition] : await currentPartitions(session, topic, ranges, next);
      if (connection !== watch.connections || !client.connected) return;
      for (const partition of partitions) {
        if (remaining !== null && !remaining.has(partition)) continue;
        const resumeAt = next.get(partition);
        subscribe({ partition: String(partition), from: resumeAt === undefined ? resumeStart(partition) : `offset:${resumeAt}` });
      }
    };
    client.onConnect = () => {
      const connection = watch.connected('resuming after the last message printed');
      if (connection === 1) {
        subscribe({ from, ...(options.partition === undefined ? {} : { partition: String(options.partition) }) });
      } else {
        resume(connection).catch(() => client.forceDisconnect());
      }
    };
    client.activate();
  });
}

/** The partition ranges of a topic that may not exist yet (a tail creates it) or may not be described by this user. */
async function optionalRanges(session: BrokerSession, topic: string): Promise<PartitionRange[] | null> {
  try {
    return await partitionRanges(session, topic);
  } catch (error) {
    // Not there yet: whatever it will hold is new, every partition starting at 0.
    if (error instanceof CommandFailedError) return [];
    if (error instanceof BrokerRefusedError && error.status === 403) return null;
    throw error;
  }
}

/** Without `follow`: each partition that holds messages the tail will print, with the offset its log ends at now. */
function pendingPartitions(ranges: PartitionRange[], from: string): Map<number, number> {
  const pending = new Map<number, number>();
  for (const range of ranges) {
    const start = startOffset(from, range) ?? range.logStartOffset;
    if (start < range.logEndOffset) pending.set(range.partition, range.logEndOffset);
  }
  return pending;
}

/** The topic's partitions now (it may have grown); those known already when the broker cannot say. */
async function currentPartitions(session: BrokerSession, topic: string, ranges: PartitionRange[] | null, next: Map<number, number>): Promise<number[]> {
  try {
    return (await partitionRanges(session, topic)).map((r) => r.partition);
  } catch {
    return [...new Set([...(ranges ?? []).map((r) => r.partition), ...next.keys()])].sort((a, b) => a - b);
  }
}

/** One message, one line: `topic/partition@offset key body`, or with `json` the JSON object scripts read. */
export function printMessage(message: IMessage, json: boolean): void {
  const body = message.binaryBody;
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const { headers } = message;
  if (!json) {
    process.stdout.write(`${headers.topic}/${headers.partition}@${headers.offset} ${headers.key ?? ''} ${text}\n`);
    return;
  }
  let value: unknown = text;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    value = parsed !== null && typeof parsed === 'object' && 'message' in parsed ? parsed.message : parsed;
  } catch {
    // not JSON: print the body as a string
  }
  const line = {
    topic: headers.topic,
    partition: Number(headers.partition),
    offset: Number(headers.offset),
    key: headers.key ?? null,
    messageID: headers['message-id'],
    timestamp: Number(headers.timestamp),
    message: value,
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}
