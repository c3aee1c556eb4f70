import type { Broker, TopicRegistry } from '../../broker/index.js';
import type { StompConfig } from '../../config/index.js';
import type { GroupCoordinator } from '../../coordinator/index.js';
import type { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { EscapeMode, Frame, HeaderInput } from '../../protocol/stomp/index.js';
import type { Publisher, PublishRequest, ReceiptCountdown } from '../publishing/index.js';
import type { DeliveryChannel } from './delivery-channel.js';
import type { SubscriptionRegistry } from './subscription-registry.js';
import type { Transactions } from './transactions.js';

/** The partitions' logs as subscriptions read them. */
export type PartitionReader = Pick<Broker, 'read' | 'offsets' | 'watch'>;

/** What the STOMP front door is built on, shared by every session. */
export interface SessionServices {
  readonly stomp: StompConfig;
  readonly serverName: string;
  readonly publisher: Publisher;
  readonly topics: Pick<TopicRegistry, 'resolve'>;
  readonly log: PartitionReader;
  readonly coordinator: GroupCoordinator;
  readonly logger: Logger;
}

/**
 * What a command handler may do on its connection: answer (RECEIPT, ERROR), publish, manage
 * subscriptions and transactions, and the few state changes CONNECT and DISCONNECT make. Handlers
 * get this, never the session, so each one can be run and tested without a socket.
 */
export interface CommandContext {
  readonly sessionId: string;
  readonly version: EscapeMode;
  readonly isConnected: boolean;
  readonly services: SessionServices;
  readonly subscriptions: SubscriptionRegistry;
  readonly transactions: Transactions;
  /** The connection as subscriptions write to it. */
  readonly channel: DeliveryChannel;
  /** A RECEIPT for the frame's `receipt` header, when it has one. */
  receipt(receipt: string | null | undefined): void;
  /** An ERROR frame (with the code, and the receipt-id when the frame asked for a receipt); then the connection closes. */
  fail(error: RillError, receipt?: string | null, details?: { body?: string; headers?: HeaderInput }): void;
  /** CONNECT succeeded: answers CONNECTED and starts heart-beats at the negotiated intervals. */
  connected(version: EscapeMode, headers: HeaderInput, outgoingMs: number, incomingMs: number): void;
  publish(request: PublishRequest, receipt: string | null, countdown: ReceiptCountdown | null): void;
  /** DISCONNECT: its RECEIPT waits for every publish still in flight, then the connection closes. */
  disconnect(receipt: string | null): void;
  /** A messageID for a message published without one: unique to this connection. */
  nextMessageId(): string;
  /** Keeps `release` to run when the connection ends (`clean` after DISCONNECT); returns a function that forgets it. */
  onClose(release: (clean: boolean) => void): () => void;
}

export type CommandHandler = (context: CommandContext, frame: Frame) => void;
