import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { z } from 'zod';
import { type ActionRunner, type BrokerOptions, type BrokerSession, brokerSession, subcommand, wholeNumber, withBrokerOptions } from '../command-line.js';
import { BrokerRefusedError, BrokerUnreachableError, CommandFailedError, EXIT } from '../failures.js';
import { printJson, printTable, progress } from '../output.js';
import { WindowedPublisher } from '../publisher.js';
import { stompClient, topicDestination } from '../stomp-client.js';
import { type PartitionRange, partitionRanges } from '../tail.js';

/** Messages awaiting their receipt at once, per producer connection. */
const WINDOW = 100;
/** The consume phase fails when nothing arrives for this long. */
const CONSUME_STALL_MS = 30_000;
const MB = 1_000_000;

interface BenchOptions extends BrokerOptions {
  messages: number;
  size: number;
  producers: number;
  topic: string;
}

interface Phase {
  messages: number;
  bytes: number;
  seconds: number;
}

export function registerBench(program: Command, runner: ActionRunner): void {
  const bench = subcommand(
    program,
    'bench',
    'measure how fast the broker publishes and delivers',
    'Publishes --messages messages of --size bytes with a receipt each through --producers connections, then reads them ' +
      'back through a tail; prints messages/s and MB/s (10^6 bytes of message bodies) for both phases. ' +
      '--json: {"topic","messages","size","producers","produce":{"messages","failed","seconds","messagesPerSecond","megabytesPerSecond"},"consume":{...}}',
  )
    .option('--messages <n>', 'messages to publish', wholeNumber('--messages', 1), 10_000)
    .option('--size <bytes>', "each message's payload size", wholeNumber('--size', 1), 100)
    .option('--producers <n>', 'producer connections publishing at once', wholeNumber('--producers', 1), 1)
    .option('--topic <topic>', 'the topic (created with the default partitions if it does not exist)', 'rill-bench');
  withBrokerOptions(bench).action(runner.wrap((options: BenchOptions) => runBench(options)));
}

async function runBench(options: BenchOptions): Promise<number> {
  const session = brokerSession(options);
  const ranges = await ensureTopic(session, options.topic);
  const run = randomUUID();
  const produced = await producePhase(session, options, run);
  const consumed = await consumePhase(session, options.topic, ranges, run, produced.stored);
  const rates = (phase: Phase) => ({
    messages: phase.messages,
    seconds: round(phase.seconds),
    messagesPerSecond: Math.round(phase.messages / Math.max(phase.seconds, 0.001)),
    megabytesPerSecond: round(phase.bytes / MB / Math.max(phase.seconds, 0.001)),
  });
  const summary = {
    topic: options.topic,
    messages: options.messages,
    size: options.size,
    producers: options.producers,
    produce: { ...rates({ messages: produced.stored, bytes: produced.storedBytes, seconds: produced.seconds }), failed: produced.failed },
    consume: rates(consumed),
  };
  if (options.json === true) {
    printJson(summary);
  } else {
    process.stdout.write(`${options.messages} messages of ${options.size} bytes to ${options.topic} through ${options.producers} producers\n`);
    printTable(
      ['PHASE', 'MESSAGES', 'SECONDS', 'MSGS/S', 'MB/S'],
      [
        ['produce', summary.produce.messages, summary.produce.seconds, summary.produce.messagesPerSecond, summary.produce.megabytesPerSecond],
        ['consume', summary.consume.messages, summary.consume.seconds, summary.consume.messagesPerSecond, summary.consume.megabytesPerSecond],
      ],
    );
  }
  return produced.failed === 0 ? EXIT.ok : EXIT.refused;
}

/** The topic's partitions and where they end now (creating it first if needed): the consume phase reads from there. */
async function ensureTopic(session: BrokerSession, topic: string): Promise<PartitionRange[]> {
  try {
    return await partitionRanges(session, topic);
  } catch (error) {
    if (!(error instanceof CommandFailedError)) throw error;
  }
  try {
    await session.admin.call('POST', 'v1/topics', z.unknown(), { name: topic });
  } catch (error) {
    // Created meanwhile by someone else: fine.
    if (!(error instanceof BrokerRefusedError && error.code === 'name-taken')) throw error;
  }
  return partitionRanges(session, topic);
}

async function producePhase(session: BrokerSession, options: BenchOptions, run: string) {
  const settled = new Array<number>(options.producers).fill(0);
  const bar = progress('produce', options.messages, 'messages');
  const publishers = settled.map(
    (_, index) =>
      new WindowedPublisher(session, options.topic, WINDOW, 'rill bench', (count) => {
        settled[index] = count;
        bar.update(settled.reduce((a, b) => a + b, 0));
      }),
  );
  try {
    await Promise.all(publishers.map((publisher) => publisher.connect()));
  } catch (error) {
    bar.stop();
    await Promise.all(publishers.map((publisher) => publisher.close()));
    throw error;
  }
  const payload = 'x'.repeat(options.size);
  const started = performance.now();
  const outcomes = await Promise.all(
    publishers.map(async (publisher, index) => {
      for (let i = index; i < options.messages; i += options.producers) {
        const messageID = `${run}-${i}`;
        const body = JSON.stringify({ messageID, key: null, message: payload, timestamp: Date.now() });
        if (!(await publisher.send({ messageID, body, headers: {} }))) break;
      }
      return publisher.close();
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  bar.stop();
  const stoppedBy = outcomes.find((o) => o.stoppedBy !== null)?.stoppedBy;
  if (stoppedBy !== undefined && stoppedBy !== null) throw stoppedBy;
  const sum = (pick: (o: (typeof outcomes)[number]) => number) => outcomes.reduce((total, o) => total + pick(o), 0);
  return { stored: sum((o) => o.stored), storedBytes: sum((o) => o.storedBytes), failed: sum((o) => o.failed), seconds };
}

/** Reads the run's messages back through a tail of each partition from where it ended before the run. */
function consumePhase(session: BrokerSession, topic: string, ranges: PartitionRange[], run: string, expected: number): Promise<Phase> {
  if (expected === 0) return Promise.resolve({ messages: 0, bytes: 0, seconds: 0 });
  const bar = progress('consume', expected, 'messages');
  const client = stompClient(session, { reconnect: false });
  const prefix = `${run}-`;
  let messages = 0;
  let bytes = 0;
  let started = 0;
  let stall: NodeJS.Timeout | undefined;
  return new Promise<Phase>((resolve, reject) => {
    let settled = false;
    const end = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(stall);
      bar.stop();
      void client.deactivate().then(outcome);
    };
    const watchForStall = (): void => {
      clearTimeout(stall);
      stall = setTimeout(
        () =>
          end(() =>
            reject(new CommandFailedError(`the consume phase read ${messages} of ${expected} messages, then nothing for ${CONSUME_STALL_MS / 1000} s`)),
          ),
        CONSUME_STALL_MS,
      );
    };
    client.onConnect = () => {
      started = performance.now();
      watchForStall();
      for (const range of ranges) {
        client.subscribe(
          topicDestination(topic),
          (message) => {
            if (settled || message.headers['message-id']?.startsWith(prefix) !== true) return;
            messages++;
            bytes += message.binaryBody.byteLength;
            bar.update(messages);
            watchForStall();
            if (messages >= expected) end(() => resolve({ messages, bytes, seconds: (performance.now() - started) / 1000 }));
          },
          { ack: 'auto', partition: String(range.partition), from: `offset:${range.logEndOffset}` },
        );
      }
    };
    client.onStompError = (frame) =>
      end(() => reject(new BrokerRefusedError(frame.headers.code ?? 'error', frame.headers.message ?? 'error from the broker', null)));
    client.onWebSocketClose = () => end(() => reject(new BrokerUnreachableError(session.address.shown, 'the connection dropped during the consume phase')));
    client.activate();
  });
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
