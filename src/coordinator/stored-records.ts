import { z } from 'zod';
import type { GroupSettings } from './group.js';

/*
 * The values kept in `__consumer_offsets`, versioned as Kafka versions its offset and group
 * records. Records written before versions existed have no `v` and the same fields: they read as
 * version 1. A record of a version this code does not know fails its schema and is skipped.
 */

const RECORD_VERSION = 1;
const version = z.literal(RECORD_VERSION).optional();

export const committedOffsetRecord = z.object({
  v: version,
  offset: z.number().int().min(0),
  committedAt: z.number().optional(),
});

export const groupSettingsRecord = z.object({
  v: version,
  assignor: z.enum(['range', 'roundrobin', 'sticky']).optional(),
  sessionTimeoutMs: z.number().int().positive().optional(),
  resetPolicy: z.enum(['earliest', 'latest']).optional(),
  autoCommitIntervalMs: z.number().int().min(0).optional(),
  maxDeliveries: z.number().int().min(1).optional(),
  deadLetterSuffix: z.string().optional(),
  deadLetterExpired: z.boolean().optional(),
}) satisfies z.ZodType<Partial<GroupSettings> & { v?: number }>;

/** A partition's delivery counts in one group: [offset, failed deliveries (-1: dead-lettered)]. */
export const deliveryCountsRecord = z.object({
  v: version,
  counts: z.array(z.tuple([z.number().int().min(0), z.number().int().min(-1)])),
});

export function encodeRecord(fields: object): string {
  return JSON.stringify({ v: RECORD_VERSION, ...fields });
}

/** The record's fields (without `v`), or why it cannot be read. */
export function decodeRecord<S extends z.ZodObject>(schema: S, text: string): { value: Omit<z.output<S>, 'v'> } | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { error: `not JSON: ${(error as Error).message}` };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) return { error: z.prettifyError(parsed.error).replace(/\n/g, ' ') };
  const { v: _version, ...value } = parsed.data as z.output<S> & { v?: number };
  return { value };
}
