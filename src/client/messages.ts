import type { IMessage } from '@stomp/stompjs';
import type { WireRecord } from './wire.js';

/** A stored message, as a tail, a group member or a pull hands it over. */
export interface Message {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  /** The producer's messageID (`<topic>-<partition>-<offset>` for a message published without one). */
  messageID: string;
  /** Epoch milliseconds: the producer's timestamp, or the broker's clock when it gave none. */
  timestamp: number;
  /** The headers the producer set (Rill's own, such as `partition` or `offset`, are the fields above). */
  headers: Record<string, string>;
  /** The stored body as text (UTF-8): for a message `publish` sent, the canonical JSON `{messageID, key, message, timestamp}`. */
  body: string;
  /** The stored body, byte for byte. */
  bytes(): Uint8Array;
  /** The body parsed as JSON; throws a SyntaxError for a body that is not JSON. */
  json<T = unknown>(): T;
  /** The published value: the `message` field of a canonical JSON body (what `publish` sends), else the whole body parsed as JSON. */
  value<T = unknown>(): T;
}

/** A message delivered to a consumer group member; in `client-individual` mode it awaits ack() or nack(). */
export interface GroupMessage extends Message {
  /** Delivered before (NACKed, or its consumer's connection dropped while it had it). */
  redelivered: boolean;
  /** How often the group was handed it, this time included. */
  deliveryCount: number;
  /**
   * Commits it. False when there is nothing to send: the message came over a connection that has
   * since dropped (the broker delivers it again, and that copy is the one to ACK), it was settled
   * already, or the subscription acknowledges by itself (`ack: 'auto'`).
   */
  ack(): boolean;
  /** Hands it back to be delivered again (dead-lettered after the group's maxDeliveries); false as for ack(). */
  nack(): boolean;
}

/** A record a pull consumer got: commit it (or the offsets after it) once processed. */
export interface PulledRecord extends Message {
  /** How often the group was handed it, this time included. */
  deliveryCount: number;
  /** The group generation it was pulled in: a commit names it, and a rebalance since fences it. */
  generation: number;
}

/** The headers Rill and STOMP put on a MESSAGE: every other header is the producer's. */
const DELIVERY_HEADERS = new Set([
  'subscription',
  'message-id',
  'destination',
  'ack',
  'topic',
  'partition',
  'offset',
  'key',
  'timestamp',
  'content-length',
  'redelivered',
  'delivery-count',
]);

interface MessageFields {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  messageID: string;
  timestamp: number;
  headers: Record<string, string>;
}

/** The body's two forms, each made when first asked for: most consumers need only one. */
class StoredMessage implements Message {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly messageID: string;
  readonly timestamp: number;
  readonly headers: Record<string, string>;
  private text: string | undefined;
  private binary: Uint8Array | undefined;

  constructor(fields: MessageFields, body: { text?: string; binary?: Uint8Array }) {
    this.topic = fields.topic;
    this.partition = fields.partition;
    this.offset = fields.offset;
    this.key = fields.key;
    this.messageID = fields.messageID;
    this.timestamp = fields.timestamp;
    this.headers = fields.headers;
    this.text = body.text;
    this.binary = body.binary;
  }

  get body(): string {
    this.text ??= new TextDecoder().decode(this.binary);
    return this.text;
  }

  bytes(): Uint8Array {
    this.binary ??= new TextEncoder().encode(this.text);
    return this.binary;
  }

  json<T = unknown>(): T {
    return JSON.parse(this.body) as T;
  }

  value<T = unknown>(): T {
    const parsed = this.json<unknown>();
    const canonical = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && Object.hasOwn(parsed, 'message');
    return (canonical ? (parsed as { message: unknown }).message : parsed) as T;
  }
}

function wholeNumber(value: string | undefined): number | null {
  if (value === undefined || !/^\d+$/.test(value)) return null;
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : null;
}

/** A MESSAGE of a tail or group subscription as a Message; null when it lacks the headers Rill always sends. */
export function messageFromFrame(frame: IMessage): Message | null {
  const { headers } = frame;
  const partition = wholeNumber(headers.partition);
  const offset = wholeNumber(headers.offset);
  const timestamp = wholeNumber(headers.timestamp);
  const topic = headers.topic;
  if (topic === undefined || partition === null || offset === null || timestamp === null) return null;
  const own: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (!DELIVERY_HEADERS.has(name)) own[name] = value;
  const messageID = headers['message-id'] ?? `${topic}-${partition}-${offset}`;
  return new StoredMessage({ topic, partition, offset, key: headers.key ?? null, messageID, timestamp, headers: own }, { binary: frame.binaryBody });
}

/** Decodes base64 with what browsers and Node both have (atob), not Buffer. */
function fromBase64(text: string): Uint8Array {
  const chars = atob(text);
  const bytes = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) bytes[i] = chars.charCodeAt(i);
  return bytes;
}

export function pulledRecord(record: WireRecord, generation: number): PulledRecord {
  const { topic, partition, offset, key, timestamp, headers } = record;
  const messageID = record.messageId ?? `${topic}-${partition}-${offset}`;
  const body = record.valueEncoding === 'utf8' ? { text: record.value } : { binary: fromBase64(record.value) };
  const message = new StoredMessage({ topic, partition, offset, key, messageID, timestamp, headers }, body);
  return Object.assign(message, { deliveryCount: record.deliveryCount, generation });
}
