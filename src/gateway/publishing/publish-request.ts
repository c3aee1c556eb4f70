import { z } from 'zod';
import {
  DELIVER_AT_HEADER,
  EXPIRES_HEADER,
  laneForPriority,
  partitionForKey,
  type CreationQuota,
  type PreparedMessage,
  type KeylessPartitioner,
  type Topic,
  type TopicRegistry,
} from '../../broker/index.js';
import { RillError, type ErrorCode } from '../../errors/index.js';
import type { FrameHeaders } from '../../protocol/stomp/index.js';

/** The canonical producer body, as the seed's producers send it. */
const canonicalMessageSchema = z.object({
  messageID: z.union([z.string().min(1).max(1024), z.number().transform(String)]).optional(),
  key: z.union([z.string().max(32 * 1024), z.number().transform(String), z.null()]).optional(),
  message: z.unknown().refine((value) => value !== undefined, 'message is required'),
  timestamp: z.union([z.number(), z.string()]).optional(),
});

/** Headers that steer a SEND rather than travel with the message. */
const CONTROL_HEADERS = new Set([
  'destination',
  'content-length',
  'receipt',
  'transaction',
  'partition',
  'key',
  'message-id',
  'timestamp',
  'ttl',
  EXPIRES_HEADER,
  'delay',
  DELIVER_AT_HEADER,
  'tombstone',
]);

/** A SEND worked out: what the broker stores. */
export type PublishRequest = PreparedMessage;

/** A SEND that cannot be published; carries the messageID when it could be read first. */
/** Whether a publisher may publish to a topic (and create it, if it is new): the refusal, or null. */
export type PublishAuthorizer = (topic: string) => RillError | null;

export class PublishError extends RillError {
  constructor(
    code: ErrorCode,
    message: string,
    /** The messageID, when it could be read before the error. */
    readonly messageId: string | null,
  ) {
    super(code, message);
  }
}

/**
 * Turns a SEND to a topic into the record to store: validates the topic (creating it when
 * auto-create is on), reads key, messageID and timestamp from the canonical JSON body or from
 * headers, and picks the partition. Throws PublishError with a reason a client can act on.
 */
export function preparePublish(
  topics: Pick<TopicRegistry, 'resolve'>,
  keyless: KeylessPartitioner,
  topicText: string,
  headers: FrameHeaders,
  body: Buffer,
  fallbackMessageId: () => string,
  quota?: CreationQuota,
  /** `limits.maxDelayMs`: the longest delay a message may ask for. */
  maxDelayMs: number = DEFAULT_MAX_DELAY_MS,
  /** The publisher's rights: the refusal of publishing to (or creating) the topic, null when allowed. Asked before the topic is created. */
  authorize?: PublishAuthorizer,
): PublishRequest {
  let key: string | null = headers.key ?? null;
  let messageId: string | null = headers['message-id'] ?? null;
  let timestampInput: number | string | undefined = headers.timestamp;

  if (headers.key === undefined && headers['message-id'] === undefined && looksLikeJson(headers, body)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (error) {
      throw new PublishError('invalid-message', `body is not valid JSON (${(error as Error).message}); send a key header to publish a non-JSON body`, null);
    }
    const canonical = plainCanonical(parsed);
    const result = canonical !== null ? { success: true as const, data: canonical } : canonicalMessageSchema.safeParse(parsed);
    if (!result.success) {
      const id = typeof (parsed as { messageID?: unknown })?.messageID === 'string' ? (parsed as { messageID: string }).messageID : null;
      throw new PublishError(
        'invalid-message',
        `body does not match {messageID, key, message, timestamp}: ${z.prettifyError(result.error).replace(/\n/g, ' ')}`,
        id,
      );
    }
    key = result.data.key ?? null;
    messageId = result.data.messageID ?? null;
    timestampInput = result.data.timestamp;
  }
  const messageIdGiven = messageId !== null;
  messageId ??= fallbackMessageId();

  const refusal = authorize?.(topicText) ?? null;
  if (refusal !== null) throw new PublishError(refusal.code, `${refusal.message}`, messageId);
  // A tombstone deletes its key from a compacted topic: a key, and no body (stored as a null value). Checked before the topic is made.
  const tombstone = isTombstone(headers, key, body, messageId);
  const topic = resolveTopic(topics, topicText, messageId, quota);
  const { maxMessageBytes, ttlMs } = topic.settings;
  if (body.length > maxMessageBytes) {
    throw new PublishError(
      'too-large',
      `a body of ${body.length} bytes is more than topic ${topic.name}'s maxMessageBytes (${maxMessageBytes}) allows`,
      messageId,
    );
  }
  const timestamp = parseTimestamp(timestampInput, messageId);
  let partition: number;
  if (headers.partition !== undefined) {
    partition = Number(headers.partition);
    if (!/^\d+$/.test(headers.partition) || partition >= topic.partitions) {
      throw new PublishError(
        'invalid-message',
        `partition header "${headers.partition}" is not a partition of topic ${topic.name} (0 to ${topic.partitions - 1})`,
        messageId,
      );
    }
  } else {
    // A key's slot is the same in every priority lane; the message's priority picks the lane.
    const slots = topic.lanes === 1 ? topic.partitions : topic.partitions / topic.lanes;
    const slot = key !== null ? partitionForKey(key, slots) : keyless.next(topic.name, slots, body.length);
    partition = topic.lanes === 1 ? slot : laneForPriority(priorityOf(headers, messageId), topic.lanes) * slots + slot;
  }
  // Checked wherever it is sent (a `partition` header picks the partition, and so the lane, itself).
  if (headers.priority !== undefined) priorityOf(headers, messageId);
  const expires = expiryFor(headers, ttlMs, messageId);
  let stored = userHeaders(headers);
  if (expires !== 0) (stored ??= []).push([EXPIRES_HEADER, String(expires)]);
  const deliverAt = deliveryTimeFor(headers, messageId, maxDelayMs);
  if (deliverAt !== 0) {
    // It would expire while it waits: never deliverable, and a partition held for nothing.
    if (expires !== 0 && expires <= deliverAt) {
      throw new PublishError('invalid-message', `the message would expire (at ${expires}) before its delivery time (${deliverAt})`, messageId);
    }
    (stored ??= []).push([DELIVER_AT_HEADER, String(deliverAt)]);
  }
  return { topic, partition, key, messageId, messageIdGiven, timestamp, headers: stored, value: tombstone ? null : body };
}

type CanonicalMessage = z.infer<typeof canonicalMessageSchema>;

/**
 * The canonical body as `canonicalMessageSchema` would give it, checked by hand for the shape
 * producers send (string messageID and key, numeric timestamp): null for anything else, which
 * the schema then judges (and explains). Every SEND runs this; the schema costs more than the
 * JSON.parse before it.
 */
function plainCanonical(parsed: unknown): CanonicalMessage | null {
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const { messageID, key, message, timestamp } = parsed as Record<string, unknown>;
  if (message === undefined) return null;
  if (messageID !== undefined && (typeof messageID !== 'string' || messageID.length < 1 || messageID.length > 1024)) return null;
  if (key !== undefined && key !== null && (typeof key !== 'string' || key.length > 32 * 1024)) return null;
  if (timestamp !== undefined && typeof timestamp !== 'number') return null;
  return { messageID, key, message, timestamp };
}

function isTombstone(headers: FrameHeaders, key: string | null, body: Buffer, messageId: string): boolean {
  const value = headers.tombstone;
  if (value === undefined || value === 'false') return false;
  if (value !== 'true') throw new PublishError('invalid-message', `tombstone header "${value.slice(0, 100)}" is neither true nor false`, messageId);
  if (key === null || body.length > 0)
    throw new PublishError('invalid-message', 'a tombstone (tombstone:true) needs a key header and an empty body', messageId);
  return true;
}

function looksLikeJson(headers: FrameHeaders, body: Buffer): boolean {
  const type = headers['content-type'];
  if (type !== undefined) return type.startsWith('application/json') || (type.startsWith('text/plain') && startsWithBrace(body));
  return startsWithBrace(body);
}

function startsWithBrace(body: Buffer): boolean {
  for (let i = 0; i < body.length; i++) {
    const byte = body[i];
    if (byte === 0x7b) return true;
    if (byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09) return false;
  }
  return false;
}

function resolveTopic(topics: Pick<TopicRegistry, 'resolve'>, name: string, messageId: string, quota: CreationQuota | undefined): Topic {
  try {
    return topics.resolve(name, 'auto', quota);
  } catch (error) {
    if (error instanceof RillError) throw new PublishError(error.code, error.message, messageId);
    throw error;
  }
}

function parseTimestamp(input: number | string | undefined, messageId: string): number {
  if (input === undefined || input === '') return Date.now();
  const value = typeof input === 'number' ? input : /^\d+(\.\d+)?$/.test(input) ? Number(input) : Date.parse(input);
  if (!Number.isFinite(value) || value < 0 || value > 8.64e15) {
    throw new PublishError('invalid-message', `timestamp "${String(input)}" is neither epoch milliseconds nor a date`, messageId);
  }
  return Math.trunc(value);
}

/**
 * When the message expires (epoch ms; 0: never): its `expires` header (epoch ms, 0 for never, as
 * JMS has it), else now plus its `ttl` header (ms), else now plus the topic's time-to-live.
 */
function expiryFor(headers: FrameHeaders, topicTtlMs: number, messageId: string): number {
  const { expires, ttl } = headers;
  if (expires !== undefined) {
    if (!/^\d{1,16}$/.test(expires)) throw new PublishError('invalid-message', `expires header "${expires}" is not epoch milliseconds (0: never)`, messageId);
    return Number(expires);
  }
  if (ttl !== undefined) {
    if (!/^\d{1,13}$/.test(ttl)) throw new PublishError('invalid-message', `ttl header "${ttl}" is not a whole number of milliseconds`, messageId);
    return Number(ttl) === 0 ? 0 : Date.now() + Number(ttl);
  }
  return topicTtlMs === 0 ? 0 : Date.now() + topicTtlMs;
}

/** JMS's default priority, for a message that names none. */
const DEFAULT_PRIORITY = 4;

/** The SEND's `priority` header, 0 (lowest) to 9; checked wherever it is sent, kept with the message. */
function priorityOf(headers: FrameHeaders, messageId: string): number {
  const { priority } = headers;
  if (priority === undefined) return DEFAULT_PRIORITY;
  if (!/^\d$/.test(priority)) throw new PublishError('invalid-message', `priority header "${priority}" is not a whole number from 0 to 9`, messageId);
  return Number(priority);
}

/** The longest delay a message may ask for unless `limits.maxDelayMs` says otherwise: a week. */
const DEFAULT_MAX_DELAY_MS = 7 * 24 * 3600_000;

/**
 * When groups may have the message (epoch ms; 0: at once): its `deliver-at` header, else now plus
 * its `delay` (ms); both are checked, and neither may be more than `maxDelayMs` ahead.
 */
function deliveryTimeFor(headers: FrameHeaders, messageId: string, maxDelayMs: number): number {
  const deliverAtText = headers[DELIVER_AT_HEADER];
  const delayText = headers.delay;
  if (deliverAtText !== undefined && !/^\d{1,16}$/.test(deliverAtText)) {
    throw new PublishError('invalid-message', `deliver-at header "${deliverAtText}" is not epoch milliseconds`, messageId);
  }
  if (delayText !== undefined && !/^\d{1,13}$/.test(delayText)) {
    throw new PublishError('invalid-message', `delay header "${delayText}" is not a whole number of milliseconds`, messageId);
  }
  const now = Date.now();
  const deliverAt = deliverAtText !== undefined ? Number(deliverAtText) : delayText !== undefined ? now + Number(delayText) : 0;
  if (deliverAt <= now) return 0;
  if (deliverAt - now > maxDelayMs) {
    throw new PublishError('invalid-message', `a delay of ${deliverAt - now} ms is more than limits.maxDelayMs (${maxDelayMs} ms) allows`, messageId);
  }
  return deliverAt;
}

function userHeaders(headers: FrameHeaders): Array<[string, string]> | null {
  let result: Array<[string, string]> | null = null;
  // for...in, not Object.entries: this runs for every message, and allocates nothing for control headers.
  for (const name in headers) {
    if (CONTROL_HEADERS.has(name)) continue;
    (result ??= []).push([name, headers[name]!]);
  }
  return result;
}
