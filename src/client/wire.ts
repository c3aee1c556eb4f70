import { RillError } from './errors.js';

/*
 * The broker's JSON answers (docs/protocol.md), checked field by field before the client relies on
 * them. Plain type guards rather than a schema library: the client ships to browsers and stays small.
 */

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isOffset(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** A messageID as the broker echoes it: a string, or a number for a producer that sent one. */
function messageIdOf(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return null;
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** One MESSAGE on `/topic/acknowledgment/<topic>`: where a message was stored, or why it was not. */
export type Acknowledgment =
  | { status: 'ACK'; messageID: string; topic: string; partition: number; offset: number; timestamp: number; duplicate: boolean }
  | { status: 'FAILED'; messageID: string | null; topic: string; error: RillError };

export function parseAcknowledgment(body: unknown): Acknowledgment | null {
  if (!isObject(body) || typeof body.topic !== 'string') return null;
  const messageID = messageIdOf(body.messageID);
  if (body.status === 'ACK') {
    if (messageID === null || !isOffset(body.partition) || !isOffset(body.offset) || typeof body.timestamp !== 'number') return null;
    const { topic, partition, offset, timestamp } = body;
    return { status: 'ACK', messageID, topic, partition, offset, timestamp, duplicate: body.duplicate === true };
  }
  if (body.status === 'FAILED') {
    if (typeof body.code !== 'string' || typeof body.reason !== 'string') return null;
    return { status: 'FAILED', messageID, topic: body.topic, error: new RillError(body.code, body.reason, body.retriable === true) };
  }
  return null;
}

/** A request's refusal: `{"error": {"code", "message", "retriable"}}` with the HTTP status of its code. */
export function errorFromAnswer(status: number, body: unknown): RillError {
  const error = isObject(body) ? body.error : undefined;
  if (isObject(error) && typeof error.code === 'string' && typeof error.message === 'string') {
    return new RillError(error.code, error.message, error.retriable === true);
  }
  return new RillError('invalid-answer', `the broker answered status ${status} without an error body`, false);
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A consumer group member as the broker sees it: its generation and the partitions assigned to it. */
export interface MemberView {
  group: string;
  member: string;
  generation: number;
  assignment: TopicPartition[];
}

function parseAssignment(value: unknown): TopicPartition[] | null {
  if (!Array.isArray(value)) return null;
  const assignment: TopicPartition[] = [];
  for (const entry of value) {
    if (!isObject(entry) || typeof entry.topic !== 'string' || !isOffset(entry.partition)) return null;
    assignment.push({ topic: entry.topic, partition: entry.partition });
  }
  return assignment;
}

export function parseMemberView(body: unknown): MemberView | null {
  if (!isObject(body) || typeof body.group !== 'string' || typeof body.member !== 'string' || !isOffset(body.generation)) return null;
  const assignment = parseAssignment(body.assignment);
  return assignment === null ? null : { group: body.group, member: body.member, generation: body.generation, assignment };
}

/** A pulled record as the broker sends it: the value as text when it is UTF-8, else base64. */
export interface WireRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  messageId: string | null;
  timestamp: number;
  headers: Record<string, string>;
  value: string;
  valueEncoding: 'utf8' | 'base64';
  deliveryCount: number;
}

function parseHeaders(value: unknown): Record<string, string> | null {
  if (!isObject(value)) return null;
  for (const entry of Object.values(value)) if (typeof entry !== 'string') return null;
  return value as Record<string, string>;
}

function parseRecord(value: unknown): WireRecord | null {
  if (!isObject(value) || typeof value.topic !== 'string' || !isOffset(value.partition) || !isOffset(value.offset)) return null;
  if (value.key !== null && typeof value.key !== 'string') return null;
  if (value.messageId !== null && typeof value.messageId !== 'string') return null;
  if (typeof value.timestamp !== 'number' || typeof value.value !== 'string' || !isOffset(value.deliveryCount)) return null;
  if (value.valueEncoding !== 'utf8' && value.valueEncoding !== 'base64') return null;
  const headers = parseHeaders(value.headers);
  if (headers === null) return null;
  return {
    topic: value.topic,
    partition: value.partition,
    offset: value.offset,
    key: value.key,
    messageId: value.messageId,
    timestamp: value.timestamp,
    headers,
    value: value.value,
    valueEncoding: value.valueEncoding,
    deliveryCount: value.deliveryCount,
  };
}

export function parsePullAnswer(body: unknown): (MemberView & { records: WireRecord[] }) | null {
  const view = parseMemberView(body);
  if (view === null || !isObject(body) || !Array.isArray(body.records)) return null;
  const records: WireRecord[] = [];
  for (const entry of body.records) {
    const record = parseRecord(entry);
    if (record === null) return null;
    records.push(record);
  }
  return { ...view, records };
}

/** `{"member", "left": true}`, the answer to a leave. */
export function parseLeft(body: unknown): true | null {
  return isObject(body) && body.left === true ? true : null;
}

/** The event a member registered over STOMP gets on its reply destination whenever its assignment changes. */
export function parseAssignmentEvent(body: unknown): MemberView | null {
  return isObject(body) && body.event === 'assignment' ? parseMemberView(body) : null;
}
