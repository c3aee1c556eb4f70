import type { TransactionalOffsetCommit } from '../../../coordinator/index.js';

export type AckMode = 'auto' | 'client' | 'client-individual';

export const ACK_MODES: ReadonlySet<string> = new Set(['auto', 'client', 'client-individual']);

/** A SUBSCRIBE's server side: it delivers MESSAGE frames and takes their ACKs and NACKs. */
export interface Subscription {
  readonly id: string;
  /** Session-local number, the prefix of every `ack` header this subscription hands out. */
  readonly number: number;
  readonly ackMode: AckMode;
  /** Delivery may go on: the socket drained or credit came back. */
  resume(): void;
  /**
   * Settles the delivery with sequence number `sequence` (and, in `client` mode, every earlier
   * one). Returns false if the subscription never handed out that number.
   */
  settle(sequence: number, accepted: boolean): boolean;
  /** Whether the subscription handed out delivery number `sequence` (settled since or not). */
  handedOut(sequence: number): boolean;
  /**
   * ACKs inside a transaction (group subscriptions only): the group offsets they commit, to be
   * committed with the transaction; throws when a message is no longer this subscription's to settle.
   */
  prepareTransaction?(sequences: readonly number[]): TransactionalAcks;
  /** Why it ends (default: the client ended it). */
  close(reason?: CloseReason): void;
}

/**
 * Why a subscription ends: the client ended it (UNSUBSCRIBE, DISCONNECT), its connection dropped
 * (the client may have crashed), or the broker closed the connection (after an ERROR, or shutting
 * down), which is no crash of the client's.
 */
export type CloseReason = 'client-left' | 'dropped' | 'closed-by-broker';

/** A group subscription's ACKs made part of a transaction. */
export interface TransactionalAcks {
  readonly offsets: TransactionalOffsetCommit;
  /** The transaction is stored: the messages are settled, their offsets committed with it. */
  committed(): void;
  /**
   * It was not: the messages are delivered again. `failed`: the consumer's failure (ABORT, a failed
   * COMMIT), counted as a NACK towards dead-lettering; not when a rebalance fenced it.
   */
  aborted(failed: boolean): void;
}

/** Builds and reads the `ack` header values: `<subscription number>.<delivery sequence>`. */
export function ackHeader(subscription: number, sequence: number): string {
  return `${subscription}.${sequence}`;
}

export function parseAckHeader(value: string): { subscription: number; sequence: number } | null {
  const match = /^(\d+)\.(\d+)$/.exec(value);
  if (match === null) return null;
  return { subscription: Number(match[1]), sequence: Number(match[2]) };
}
