import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import type { GroupCoordinator, PulledRecord, SeekTarget } from './coordinator.js';

/*
 * Every consumer-group request, once: its zod schema and what it does. The HTTP API and the STOMP
 * request destinations both call these, so the two can never drift apart.
 */

const name = z.string().min(1).max(249);
const settings = {
  assignor: z.enum(['range', 'roundrobin', 'sticky']).optional(),
  sessionTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
  resetPolicy: z.enum(['earliest', 'latest']).optional(),
  autoCommitIntervalMs: z.number().int().min(0).optional(),
  maxDeliveries: z.number().int().min(1).max(1000).optional(),
  deadLetterExpired: z.boolean().optional(),
};
const topicPartition = { topic: name, partition: z.number().int().min(0) };
const seekTarget = z.discriminatedUnion('to', [
  z.object({ to: z.literal('earliest') }),
  z.object({ to: z.literal('latest') }),
  z.object({ to: z.literal('offset'), offset: z.number().int().min(0) }),
  z.object({ to: z.literal('timestamp'), timestamp: z.number().min(0) }),
]);

/** A pulled record as JSON: the value as text when it is UTF-8, else base64. */
type WireRecord = Omit<PulledRecord, 'headers' | 'value' | 'tombstone'> & {
  tombstone?: true;
  headers: Record<string, string>;
  value: string;
  valueEncoding: 'utf8' | 'base64';
};

function toWire(record: PulledRecord): WireRecord {
  const text = isUtf8(record.value);
  const wire: WireRecord = {
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
    key: record.key,
    messageId: record.messageId,
    timestamp: record.timestamp,
    headers: record.headers.length === 0 ? {} : Object.fromEntries(record.headers),
    value: record.value.toString(text ? 'utf8' : 'base64'),
    valueEncoding: text ? 'utf8' : 'base64',
    deliveryCount: record.deliveryCount,
  };
  // Added, not spread in: a pull serializes thousands of these.
  if (record.tombstone) wire.tombstone = true;
  return wire;
}

/**
 * What a pull takes besides its member and message count; a fetch of record batches (HTTP only:
 * its answer is not JSON) takes exactly these, batches being cut by bytes as Kafka's Fetch does.
 */
export const fetchOptions = z
  .object({
    generation: z.number().int().min(0).optional(),
    maxBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * 1024 * 1024)
      .optional(),
    maxWaitMs: z.number().int().min(0).max(60_000).optional(),
  })
  .strict();

function operation<S extends z.ZodType, R>(input: S, run: (coordinator: GroupCoordinator, request: z.output<S>) => Promise<R> | R) {
  return { input, run };
}

export const operations = {
  'create-group': operation(z.object({ group: name, ...settings }).strict(), async (c, { group, ...rest }) => {
    const created = await c.createGroup(group, Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)));
    return { group: created.name, generation: created.generation, settings: created.settings };
  }),
  'list-groups': operation(z.object({}).strict(), (c) => ({
    groups: c.listGroups().map((g) => ({ group: g.name, generation: g.generation, members: g.memberCount })),
  })),
  'describe-group': operation(z.object({ group: name }).strict(), async (c, { group }) => {
    const description = c.describe(group);
    const partitions = (await c.lag(group)).map(({ topic, partition, committedOffset, logEndOffset, lag }) => ({
      topic,
      partition,
      committedOffset,
      logEndOffset,
      lag,
    }));
    return { ...description, partitions };
  }),
  'delete-group': operation(z.object({ group: name }).strict(), async (c, { group }) => {
    await c.deleteGroup(group);
    return { group, deleted: true as const };
  }),
  lag: operation(z.object({ group: name }).strict(), async (c, { group }) => ({ group, partitions: await c.lag(group) })),
  'reset-offsets': operation(
    z.object({ group: name, topic: name.optional(), target: seekTarget, dryRun: z.boolean().optional() }).strict(),
    async (c, { group, topic, target, dryRun = false }) => ({
      group,
      offsets: await c.resetOffsets(group, target as SeekTarget, topic, dryRun),
      dryRun,
    }),
  ),
  join: operation(
    z.object({ group: name, member: name, instanceId: name.optional(), topics: z.array(name).optional() }).strict(),
    (c, { group, member, instanceId, topics }) => c.join(group, member, { instanceId, topics }),
  ),
  subscribe: operation(z.object({ member: name, topics: z.array(name).min(1) }).strict(), (c, { member, topics }) => c.subscribe(member, topics)),
  heartbeat: operation(z.object({ member: name }).strict(), (c, { member }) => c.heartbeat(member)),
  leave: operation(z.object({ member: name }).strict(), async (c, { member }) => {
    await c.leave(member);
    return { member, left: true };
  }),
  pull: operation(
    z
      .object({
        member: name,
        ...fetchOptions.shape,
        maxMessages: z.number().int().min(1).max(100_000).optional(),
      })
      .strict(),
    async (c, { member, ...options }) => {
      const result = await c.pull(member, options);
      return { ...result, records: result.records.map(toWire) };
    },
  ),
  commit: operation(
    z
      .object({
        member: name,
        generation: z.number().int().min(0).optional(),
        offsets: z.array(z.object({ ...topicPartition, offset: z.number().int().min(0) }).strict()).min(1),
      })
      .strict(),
    (c, { member, offsets, generation }) => c.commit(member, offsets, generation),
  ),
  reject: operation(
    z.object({ member: name, generation: z.number().int().min(0).optional(), ...topicPartition, offset: z.number().int().min(0) }).strict(),
    (c, { member, generation, topic, partition, offset }) => c.reject(member, { topic, partition, offset }, generation),
  ),
  seek: operation(z.object({ member: name, ...topicPartition, target: seekTarget }).strict(), async (c, { member, topic, partition, target }) => ({
    topic,
    partition,
    position: await c.seek(member, { topic, partition }, target as SeekTarget),
  })),
};

export type OperationName = keyof typeof operations;

/* The answers, as zod schemas: the documented contract, checked by the tests against real answers. */
const tp = z.object({ topic: z.string(), partition: z.number().int() });
const memberView = z.object({ group: z.string(), member: z.string(), generation: z.number().int(), assignment: z.array(tp) });
const committedEntry = tp.extend({ offset: z.number().int() });
const groupSettings = z.object({
  assignor: z.enum(['range', 'roundrobin', 'sticky']),
  sessionTimeoutMs: z.number(),
  resetPolicy: z.enum(['earliest', 'latest']),
  autoCommitIntervalMs: z.number(),
  maxDeliveries: z.number(),
  deadLetterSuffix: z.string(),
  deadLetterExpired: z.boolean(),
});

export const answers = {
  error: z.object({ error: z.object({ code: z.string(), message: z.string(), retriable: z.boolean() }) }),
  'create-group': z.object({ group: z.string(), generation: z.number().int(), settings: groupSettings }),
  'list-groups': z.object({ groups: z.array(z.object({ group: z.string(), generation: z.number().int(), members: z.number().int() })) }),
  'describe-group': z.object({
    group: z.string(),
    generation: z.number().int(),
    settings: groupSettings,
    members: z.array(memberView.extend({ topics: z.array(z.string()), instanceId: z.string().nullable() })),
    /** Every partition of the topics its members subscribe to, and every one it committed an offset for. */
    partitions: z.array(tp.extend({ committedOffset: z.number().int().nullable(), logEndOffset: z.number().int(), lag: z.number().int() })),
  }),
  'delete-group': z.object({ group: z.string(), deleted: z.literal(true) }),
  lag: z.object({
    group: z.string(),
    partitions: z.array(committedEntry.extend({ committedOffset: z.number().int().nullable(), logEndOffset: z.number().int(), lag: z.number().int() })),
  }),
  'reset-offsets': z.object({ group: z.string(), offsets: z.array(committedEntry), dryRun: z.boolean() }),
  join: memberView,
  subscribe: memberView,
  heartbeat: memberView,
  leave: z.object({ member: z.string(), left: z.literal(true) }),
  pull: memberView.extend({
    records: z.array(
      z.object({
        topic: z.string(),
        partition: z.number().int(),
        offset: z.number().int(),
        key: z.string().nullable(),
        messageId: z.string().nullable(),
        timestamp: z.number(),
        headers: z.record(z.string(), z.string()),
        value: z.string(),
        valueEncoding: z.enum(['utf8', 'base64']),
        deliveryCount: z.number().int().min(1),
        /** Present on a tombstone (a key's deletion in a compacted topic; its value is empty). */
        tombstone: z.literal(true).optional(),
      }),
    ),
  }),
  commit: memberView,
  seek: z.object({ topic: z.string(), partition: z.number().int(), position: z.number().int() }),
  reject: committedEntry.extend({ deadLetter: committedEntry }),
} satisfies Record<OperationName | 'error', z.ZodType>;
