import type { Broker, CreationQuota, TopicRegistry } from '../../broker/index.js';
import type { StompConfig } from '../../config/index.js';
import type { GroupCoordinator } from '../../coordinator/index.js';
import type { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { EscapeMode, Frame, HeaderInput } from '../../protocol/stomp/index.js';
import type { Principal, PrincipalRights, Security } from '../../security/index.js';
import type { TransactionalOffsets } from '../../transactions/index.js';
import type { PublishAuthorizer, Publisher, PublishRequest, ReceiptCountdown } from '../publishing/index.js';
import type { ErrorDetails } from './answer-queue.js';
import type { DeliveryChannel } from './delivery-channel.js';
import type { SubscriptionRegistry } from './subscription-registry.js';
import type { Transactions } from './transactions.js';

/** The partitions' logs as subscriptions read them. */
export type PartitionReader = Pick<Broker, 'read' | 'offsets' | 'watch' | 'delivered'>;

/** What the STOMP front door is built on, shared by every session. */
export interface SessionServices {
  readonly stomp: StompConfig;
  readonly serverName: string;
  readonly publisher: Publisher;
  readonly topics: Pick<TopicRegistry, 'resolve' | 'get'>;
  readonly log: PartitionReader;
  readonly coordinator: GroupCoordinator;
  readonly logger: Logger;
  /** Who may connect, and what each principal may do. */
  readonly security: Security;
  /** limits.connectionHighWaterBytes: unsent bytes past which a connection is neither read from nor pushed MESSAGEs. */
  readonly connectionHighWaterBytes: number;
  /** limits.autoCreatePerMinute: topics one connection may create by naming them, per minute. */
  readonly autoCreatePerMinute: number;
}

/** The answer to a frame that is answered later, after asynchronous work: it keeps the frame's place in the order of answers. */
export interface LaterAnswer {
  /** The frame's place in its connection's order of answers. */
  readonly place: number;
  /** The work is done: the RECEIPT, if the frame asked for one, goes out in turn. */
  receipt(): void;
  /** The work failed: an ERROR in the frame's turn (with its receipt-id), then the connection closes. */
  fail(error: RillError): void;
}

/**
 * What a command handler may do on its connection: answer (RECEIPT, ERROR), publish, manage
 * subscriptions and transactions, and the few state changes CONNECT and DISCONNECT make. Handlers
 * get this, never the session, so each one can be run and tested without a socket.
 *
 * Answers reach the client in the order of the frames that asked for them: `receipt` and `fail`
 * answer the frame being handled, now (they wait only for earlier frames' answers); a frame whose
 * answer comes after asynchronous work takes `later` while it is handled, and answers through it.
 */
export interface CommandContext {
  readonly sessionId: string;
  /** This connection's allowance for creating topics by naming them. */
  readonly topicQuota: CreationQuota;
  readonly version: EscapeMode;
  readonly isConnected: boolean;
  /** What the connection's principal may do (once connected). */
  readonly rights: PrincipalRights;
  /** The connection's rights as the publish path asks them (publish to a topic, create it). */
  readonly authorizePublish: PublishAuthorizer;
  readonly remoteAddress: string;
  /** The common name of the connection's verified TLS client certificate; null without one. */
  readonly certificateSubject: string | null;
  readonly services: SessionServices;
  readonly subscriptions: SubscriptionRegistry;
  readonly transactions: Transactions;
  /** The connection as subscriptions write to it. */
  readonly channel: DeliveryChannel;
  /** A RECEIPT for the frame being handled, when it has a `receipt` header. */
  receipt(receipt: string | null | undefined): void;
  /**
   * An ERROR frame for the frame being handled (with the code, and the receipt-id when it asked for
   * a receipt), once earlier frames are answered; no frame after it is handled, and the connection closes.
   */
  fail(error: RillError, receipt?: string | null, details?: ErrorDetails): void;
  /** Keeps the place of the frame being handled for an answer given after asynchronous work. Call it while handling the frame. */
  later(receipt: string | null | undefined): LaterAnswer;
  /**
   * CONNECT succeeded, as `principal` (authenticated under the security settings' `generation`):
   * answers CONNECTED and starts heart-beats at the negotiated intervals.
   */
  connected(version: EscapeMode, headers: HeaderInput, outgoingMs: number, incomingMs: number, principal: Principal, generation: number): void;
  /** Frames read while `work` runs (checking a CONNECT's credentials) wait, unhandled and in order, until it is done. */
  holdFrames(work: Promise<void>): void;
  /** A fresh token for the connection's user: its rights and expiry follow the new token. */
  renewPrincipal(principal: Principal): void;
  /**
   * Publishes one message of the frame being handled: a SEND (its RECEIPT, for `receipt`, once it
   * is stored) or one of a COMMIT's (the countdown's RECEIPT once all are; `receipt` is then null).
   */
  publish(request: PublishRequest, receipt: string | null): void;
  /**
   * Publishes a COMMIT's messages, and commits its group offsets, together: all stored or none;
   * the countdown's RECEIPT once all are. Resolves once the transaction is stored.
   */
  commitTransaction(requests: readonly PublishRequest[], countdown: ReceiptCountdown, offsets: readonly TransactionalOffsets[]): Promise<void>;
  /** DISCONNECT: its RECEIPT waits for every publish still in flight, then the connection closes. */
  disconnect(receipt: string | null): void;
  /** A messageID for a message published without one: unique to this connection. */
  nextMessageId(): string;
  /** Keeps `release` to run when the connection ends (`clean` after DISCONNECT); returns a function that forgets it. */
  onClose(release: (clean: boolean) => void): () => void;
}

export type CommandHandler = (context: CommandContext, frame: Frame) => void;
