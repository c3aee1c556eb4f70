import { CreationQuota } from '../../broker/index.js';
import { asRillError, RillError, stompErrorHeaders } from '../../errors/index.js';
import { encodeFrame, FrameParser, FrameTooLargeError, StompProtocolError, type EscapeMode, type Frame, type HeaderInput } from '../../protocol/stomp/index.js';
import { PrincipalRights, type Principal, type PrincipalQuota } from '../../security/index.js';
import type { TransactionalOffsets } from '../../transactions/index.js';
import { publishAuthorizer } from '../access.js';
import type { Producer, PublishAuthorizer, PublishRequest, ReceiptCountdown } from '../publishing/index.js';
import { WEBSOCKET_MESSAGE_TOO_BIG, type Transport, type TransportEvents } from '../transport/index.js';
import { AnswerQueue, type AnswerWriter, type ErrorDetails } from './answer-queue.js';
import type { CommandContext, LaterAnswer, SessionServices } from './command-context.js';
import { COMMAND_HANDLERS } from './commands/index.js';
import type { DeliveryChannel } from './delivery-channel.js';
import { Heartbeats } from './heartbeats.js';
import { ReadGate, type ReadPause } from './read-gate.js';
import { SubscriptionRegistry } from './subscription-registry.js';
import { Transactions } from './transactions.js';

/**
 * `failing`: an ERROR is decided and waits for the answers of earlier frames; no frame is handled
 * any more, but those answers (and acknowledgments) still go out. `closing`: the last frame (an
 * ERROR, or DISCONNECT's RECEIPT) is written and the connection closes once it has left.
 */
type SessionState = 'awaiting-connect' | 'connected' | 'failing' | 'closing' | 'closed';

export interface ConnectionView {
  session: string;
  remote: string;
  transport: 'websocket' | 'tcp';
  state: SessionState;
  /** Who it acts as, once connected. */
  principal: string | null;
  connectedAt: string;
  /** The ids of its subscriptions. */
  subscriptions: string[];
  /** Bytes read from it and written to it, since it connected. */
  bytesIn: number;
  bytesOut: number;
  /** Bytes written to the socket that the client has not taken yet. */
  bufferedBytes: number;
  /** Why the server is not reading from it: none, storage is behind, its client does not read (backlog), or both. */
  readingPausedFor: ReadPause[];
}

/** About what a RECEIPT frame takes besides its receipt-id, and an acknowledgment MESSAGE besides its messageID and topic (twice). */
const RECEIPT_BYTES = 22;
const ACKNOWLEDGMENT_BYTES = 240;

/** A connection told to close (after an ERROR or DISCONNECT) that has not closed by then, its client not taking what is left, is dropped. */
const CLOSING_GRACE_MS = 10_000;

let sessionCounter = 0;

/**
 * One STOMP connection, whatever its transport: parses the bytes that arrive, runs each frame
 * through its command handler, keeps heart-beats both ways, and turns any client mistake into an
 * ERROR frame that is flushed before the connection closes. Its state is its own: handlers see a
 * CommandContext, subscriptions a DeliveryChannel, the publish path a Producer.
 */
export class StompSession implements TransportEvents {
  readonly id = `${(++sessionCounter).toString(36)}-${Date.now().toString(36)}`;
  private state: SessionState = 'awaiting-connect';
  private version: EscapeMode = '1.2';
  private readonly parser: FrameParser;
  private readonly subscriptions = new SubscriptionRegistry();
  private readonly transactions: Transactions;
  private readonly heartbeats: Heartbeats;
  private readonly closeHandlers = new Set<(clean: boolean) => void>();
  private readonly connectTimer: NodeJS.Timeout;
  /** Publishes handed to the broker and not yet answered. */
  private inflightPublishes = 0;
  /** About how many bytes the answers of those publishes (RECEIPTs, acknowledgments) will take once storage has answered. */
  private owedBytes = 0;
  /** Set by DISCONNECT: its place among the answers, made ready once every publish is answered. */
  private disconnectPlace: number | undefined = undefined;
  /** The broker ended the connection (an ERROR sent): no subscription counts it as its client crashing. */
  private closedByBroker = false;
  private messageCounter = 0;
  /** RECEIPTs and ERRORs in the order of the frames that asked for them. */
  private readonly answers = new AnswerQueue(this.answerWriter());
  /** Whether the server reads from the connection: storage behind, or the client not reading what it is sent. */
  private readonly readGate: ReadGate;
  /** limits.connectionHighWaterBytes: more unsent than this and the session neither reads nor pushes MESSAGEs. */
  private readonly highWaterBytes: number;
  private closingTimer: NodeJS.Timeout | undefined;
  /** The WebSocket close code this connection ends with: 1001 (going away) when the broker shuts down. */
  private closeCode = 1000;
  private readonly context: CommandContext;
  private readonly channel: DeliveryChannel;
  /** What the connection's principal may do; set by a successful CONNECT. */
  private rights: PrincipalRights | undefined;
  private authorizePublish: PublishAuthorizer | undefined;
  /** Frames read while the CONNECT's credentials are checked, handled in order once they are. */
  private held: Frame[] | null = null;
  /** Ends the connection when its token expires, unless a fresh one comes first. */
  private expiryTimer: NodeJS.Timeout | undefined;
  private forgetReload: (() => void) | undefined;
  /** The principal's quota, when auth.quotas sets any limit. */
  private quota: PrincipalQuota | undefined;
  /** Set while the principal's publish rate is limited: SENDs counted in the chunk being read. */
  private sendsInChunk = -1;
  private quotaTimer: NodeJS.Timeout | undefined;
  /** Bytes read from and written to the connection (operators see them in the connection list). */
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly connectedAt = Date.now();
  readonly producer: Producer;

  constructor(
    private readonly transport: Transport,
    private readonly services: SessionServices,
    private readonly onClosed: (session: StompSession) => void,
  ) {
    const { stomp } = services;
    this.readGate = new ReadGate(transport);
    this.highWaterBytes = services.connectionHighWaterBytes;
    this.transactions = new Transactions(stomp.maxTransactionFrames);
    this.parser = new FrameParser((frame) => this.handleFrame(frame), {
      maxFrameBytes: stomp.maxFrameBytes,
      maxHeaders: stomp.maxHeaders,
      maxHeaderBytes: stomp.maxHeaderBytes,
    });
    this.heartbeats = new Heartbeats(
      (bytes) => this.transport.send(bytes),
      () => this.readingPaused,
      (silentForMs) => {
        this.services.logger.info({ session: this.id, remote: this.transport.remoteAddress, silentForMs }, 'client missed its heart-beats; disconnecting');
        this.transport.destroy();
        this.onClose();
      },
    );
    this.connectTimer = setTimeout(() => {
      if (this.state === 'awaiting-connect') this.fail(new RillError('timeout', `no CONNECT frame within ${stomp.connectTimeoutMs} ms`));
    }, stomp.connectTimeoutMs);
    this.connectTimer.unref();
    this.channel = this.deliveryChannel();
    this.producer = this.producerFace();
    this.context = this.commandContext();
  }

  /** What an operator (or a test) may see of the connection. */
  describe(): ConnectionView {
    return {
      session: this.id,
      remote: this.transport.remoteAddress,
      transport: this.transport.kind,
      state: this.state,
      principal: this.rights?.principal.name ?? null,
      connectedAt: new Date(this.connectedAt).toISOString(),
      subscriptions: this.subscriptions.ids(),
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      bufferedBytes: this.transport.bufferedBytes,
      readingPausedFor: this.readGate.reasons(),
    };
  }

  /**
   * An operator closes the connection: an ERROR saying so, after the answers it is owed, then
   * close; a connection still open after the closing grace (answers that never come, a client
   * that does not read) is dropped.
   */
  closeByOperator(reason: string): void {
    this.endWith(new RillError('closed-by-operator', reason));
    setTimeout(() => this.transport.destroy(), CLOSING_GRACE_MS).unref();
  }

  /** A topic was deleted: a connection consuming it (a tail or a group member) ends with an ERROR saying so. */
  topicDeleted(topic: string): void {
    if (this.state !== 'connected') return;
    const consumes = this.subscriptions
      .requirements()
      .some((need) => need.operation === 'consume' && need.resource.type === 'topic' && need.resource.name === topic);
    if (consumes) this.endWith(new RillError('unknown-topic', `topic "${topic}" was deleted`));
  }

  /** Paused reads are backpressure, not silence: the heart-beat check waits. */
  private get readingPaused(): boolean {
    return this.readGate.paused;
  }

  // ---- the transport's events ----

  onData(chunk: Buffer): void {
    this.heartbeats.received();
    this.bytesIn += chunk.length;
    if (this.state !== 'connected' && this.state !== 'awaiting-connect') return;
    try {
      this.parser.push(chunk);
      if (this.sendsInChunk >= 0) this.chargeQuota(chunk.length);
    } catch (error) {
      // The frame that broke the rules is a frame of its own: its ERROR comes after every earlier frame's answer.
      this.answers.next();
      // A frame too large names the setting that makes it so, for the operator the client will ask.
      if (error instanceof FrameTooLargeError) this.fail(new RillError('invalid-frame', `${error.message} (stomp.maxFrameBytes)`), error.receipt);
      else if (error instanceof StompProtocolError) this.fail(new RillError('invalid-frame', error.message), error.receipt);
      else {
        this.services.logger.error({ err: error, session: this.id }, 'internal error while handling a frame');
        this.fail(new RillError('internal', 'internal server error'));
      }
    }
    // Answers to what this client sends pile up while it does not read them: stop reading from it
    // while what it has not taken, and what it will be sent for publishes still being stored, pass
    // the mark (checked once per chunk read, not per frame).
    if (this.transport.bufferedBytes + this.owedBytes > this.highWaterBytes) this.readGate.pause('backlog');
  }

  onDrain(): void {
    this.resumeIfRelieved();
    this.subscriptions.resumeAll();
  }

  /** Reading paused for the backlog resumes once the socket drained and the answers owed are back under the mark. */
  private resumeIfRelieved(): void {
    if (this.readGate.backlogged && this.transport.bufferedBytes + this.owedBytes <= this.highWaterBytes) this.readGate.resume('backlog');
  }

  onClose(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopTimers();
    clearTimeout(this.closingTimer);
    this.answers.discard();
    // After DISCONNECT the members leave cleanly; a dropped connection leaves them to time out.
    const clean = this.disconnectPlace !== undefined;
    this.subscriptions.closeAll(clean ? 'client-left' : this.closedByBroker ? 'closed-by-broker' : 'dropped');
    this.quota?.closeConnection();
    this.quota = undefined;
    for (const release of this.closeHandlers) release(clean);
    this.closeHandlers.clear();
    this.transactions.clear();
    this.onClosed(this);
  }

  // ---- the gateway's controls ----

  /** Storage is behind: stop reading until it catches up (the connection's own backpressure is apart from this). */
  pauseForStorage(): void {
    this.readGate.pause('storage');
  }

  resumeForStorage(): void {
    this.readGate.resume('storage');
  }

  /** Refuses the connection before any frame: an ERROR, then close. */
  refuse(error: RillError): void {
    this.fail(error);
  }

  /** The transport refused what the client sent: an ERROR, then close with the transport's code. */
  onRefused(closeCode: number, reason: string): void {
    this.closeCode = closeCode;
    const limit = closeCode === WEBSOCKET_MESSAGE_TOO_BIG ? ` (a frame may be at most ${this.services.stomp.maxFrameBytes} bytes: stomp.maxFrameBytes)` : '';
    // The refused message is a frame of its own: its ERROR comes after the answers to every earlier one.
    this.answers.next();
    this.fail(new RillError('invalid-frame', `${reason}${limit}`));
  }

  /**
   * The broker is shutting down: no frame read from now on is handled, every frame already read
   * is answered as usual (publishes once storage answers), then an ERROR says the broker is going
   * away and the connection closes (a WebSocket with 1001).
   */
  shutDown(): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.closeCode = 1001;
    const error = new RillError('unavailable', 'the broker is shutting down: connect again (to another broker, or later) and send again what was not answered');
    if (this.state === 'awaiting-connect') this.fail(error);
    else this.failAt(this.answers.next(), error);
  }

  end(): void {
    this.transport.end();
  }

  destroy(): void {
    this.transport.destroy();
  }

  // ---- frames ----

  private handleFrame(frame: Frame): void {
    if (this.state !== 'connected' && this.state !== 'awaiting-connect') return;
    if (this.held !== null) {
      this.held.push(frame);
      return;
    }
    if (this.sendsInChunk >= 0 && frame.command === 'SEND') this.sendsInChunk++;
    this.answers.next();
    if (this.state === 'awaiting-connect' && frame.command !== 'CONNECT' && frame.command !== 'STOMP') {
      this.fail(new RillError('unexpected-frame', `expected CONNECT or STOMP as the first frame, got ${frame.command}`), frame.headers.receipt);
      return;
    }
    const handler = COMMAND_HANDLERS[frame.command];
    if (handler === undefined) {
      this.fail(new RillError('unknown-command', `unknown command ${frame.command}`), frame.headers.receipt);
      return;
    }
    try {
      handler(this.context, frame);
    } catch (error) {
      const failure = asRillError(error);
      if (failure.code === 'internal') {
        // A bug or an unexpected system error: its details (paths, stacks) are for the log, not the client.
        this.services.logger.error({ err: error, session: this.id, command: frame.command }, 'internal error while handling a frame');
        this.fail(new RillError('internal', 'internal server error'), frame.headers.receipt);
      } else this.fail(failure, frame.headers.receipt);
    }
  }

  /** Nothing is written after the last frame (an ERROR, DISCONNECT's RECEIPT). */
  private sendFrame(command: string, headers: HeaderInput, body?: Buffer | string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.sendBytes(encodeFrame(command, headers, body, this.version));
  }

  private sendBytes(frame: Buffer): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.heartbeats.sent();
    this.bytesOut += frame.length;
    this.transport.send(frame);
  }

  /** An ERROR for the frame read last (or being handled); see failAt. */
  private fail(error: RillError, receipt?: string | null, details?: ErrorDetails): void {
    this.failAt(this.answers.current, error, receipt, details);
  }

  /**
   * An ERROR for the frame at `place`: no frame is handled from now on, the answers of earlier
   * frames go out as they come, then the ERROR, and the connection closes once it is written.
   */
  private failAt(place: number, error: RillError, receipt?: string | null, details?: ErrorDetails): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.state !== 'failing') {
      this.state = 'failing';
      this.transactions.clear();
    }
    this.answers.fail(place, error, receipt, details);
  }

  /** How the answer queue writes what it lets go. */
  private answerWriter(): AnswerWriter {
    return {
      receipt: (receipt) => this.sendFrame('RECEIPT', { 'receipt-id': receipt }),
      error: (error, receipt, details) => {
        if (this.state === 'closing' || this.state === 'closed') return;
        this.services.logger.debug(
          { session: this.id, remote: this.transport.remoteAddress, code: error.code, reason: error.message },
          'closing session with ERROR',
        );
        const headers: HeaderInput = {
          ...details?.headers,
          ...stompErrorHeaders(error),
          message: error.message.slice(0, 1000),
          'content-type': 'text/plain',
        };
        if (receipt !== null) headers['receipt-id'] = receipt;
        // Before the frame: a transport that closes as it writes must already see the broker's close.
        this.closedByBroker = true;
        this.sendFrame('ERROR', headers, details?.body ?? error.message);
        this.close();
      },
      close: (receipt) => {
        if (this.state === 'closing' || this.state === 'closed') return;
        if (receipt !== null) this.sendFrame('RECEIPT', { 'receipt-id': receipt });
        this.close();
      },
    };
  }

  /** Closes once what was written has left; a client that does not take it within the grace period is dropped. */
  private close(): void {
    this.state = 'closing';
    this.stopTimers();
    this.readGate.close();
    this.transport.end(this.closeCode);
    this.closingTimer = setTimeout(() => this.transport.destroy(), CLOSING_GRACE_MS);
    this.closingTimer.unref();
  }

  private connected(version: EscapeMode, headers: HeaderInput, outgoingMs: number, incomingMs: number, principal: Principal, generation: number): void {
    if (this.state !== 'awaiting-connect') return;
    const { security } = this.services;
    // Users were reloaded while the credentials were checked: they must still hold.
    if (generation !== security.generation && !security.stillValid(principal)) {
      this.fail(new RillError('unauthenticated', 'bad credentials'));
      return;
    }
    if (security.quotas.active) {
      const quota = security.quotas.of(principal);
      try {
        quota.openConnection();
      } catch (error) {
        this.fail(asRillError(error));
        return;
      }
      this.quota = quota;
      this.subscriptions.quota = quota;
      if (quota.limitsRate) {
        this.sendsInChunk = 0;
        // A principal already over its rate (its other connections, or this one reconnecting) reads nothing more for now.
        this.chargeQuota(0);
      }
    }
    this.rights = new PrincipalRights(security, principal, this.transport.remoteAddress, generation);
    this.authorizePublish = publishAuthorizer(this.rights, this.services.topics);
    this.sendFrame('CONNECTED', headers);
    this.state = 'connected';
    this.version = version;
    this.parser.escapeMode = version;
    clearTimeout(this.connectTimer);
    this.heartbeats.start(outgoingMs, incomingMs, this.services.stomp.heartbeat.grace);
    this.armExpiry(principal);
    this.forgetReload = this.services.security.onReload(() => this.recheckRights());
  }

  /**
   * While `work` runs (a CONNECT's credentials being checked), frames that arrive are held and
   * reading pauses; then they are handled in order (or dropped, when the work failed the session).
   */
  private holdFrames(work: Promise<void>): void {
    this.held = [];
    this.readGate.pause('authentication');
    void work.finally(() => {
      const frames = this.held ?? [];
      this.held = null;
      this.readGate.resume('authentication');
      for (const frame of frames) this.handleFrame(frame);
    });
  }

  /** A token's connection ends with an ERROR when it expires, unless a fresh token (SEND to /session/token) comes first. */
  private armExpiry(principal: Principal): void {
    clearTimeout(this.expiryTimer);
    if (principal.expiresAt === null) return;
    const expiresAt = principal.expiresAt;
    // A timer cannot wait longer than 2^31-1 ms: a longer wait is taken in steps.
    const wait = Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => {
      if (Date.now() < expiresAt) return this.armExpiry(principal);
      this.endWith(
        new RillError(
          'unauthenticated',
          `token expired at ${new Date(expiresAt).toISOString()}: connect again with a fresh token, or send one to /session/token before it expires`,
        ),
      );
    }, wait);
    this.expiryTimer.unref();
  }

  /** The connection's token was replaced by a fresh one for the same user. */
  private renewPrincipal(principal: Principal): void {
    this.rights?.replace(principal);
    this.armExpiry(principal);
    // The fresh token's roles may grant less than the old one's.
    this.recheckRights();
  }

  /**
   * Users and rules were reloaded: a connection whose user is gone ends, and so does one holding a
   * subscription it may no longer have (its rights are lost at once, not at its next frame).
   */
  private recheckRights(): void {
    const rights = this.rights;
    if (rights === undefined || this.state !== 'connected') return;
    const { security } = this.services;
    if (!security.stillValid(rights.principal)) {
      return this.endWith(new RillError('unauthenticated', `user "${rights.principal.name}" may no longer connect`));
    }
    for (const needed of this.subscriptions.requirements()) {
      const refusal = rights.decide(needed.operation, needed.resource);
      if (refusal !== null) return this.endWith(new RillError('forbidden', `access revoked: ${refusal.message}`));
    }
  }

  /** An ERROR of the broker's own (an operator, an expired token, rights revoked): after the answers already owed, then close. */
  private endWith(error: RillError): void {
    if (this.state === 'awaiting-connect') this.fail(error);
    else if (this.state === 'connected') this.failAt(this.answers.next(), error);
  }

  private publish(request: PublishRequest, receipt: string | null): void {
    const owed = this.owe(request, receipt);
    this.services.publisher.publish(this.producer, request, this.answers.reserve(receipt), receipt !== null, owed);
  }

  /** A COMMIT's messages, stored together (or none of them); each counted as a publish until answered. */
  private commitTransaction(requests: readonly PublishRequest[], countdown: ReceiptCountdown, offsets: readonly TransactionalOffsets[]): Promise<void> {
    const owed = requests.map((request) => this.owe(request, null));
    return this.services.publisher.publishTransaction(this.producer, requests, countdown, owed, offsets);
  }

  /**
   * Counts a publish in flight, and what its answers (a RECEIPT for `receipt`, an acknowledgment)
   * will take, against the mark until they are written (see onData); returns those bytes.
   */
  private owe(request: PublishRequest, receipt: string | null): number {
    this.inflightPublishes++;
    let owed = receipt === null ? 0 : RECEIPT_BYTES + receipt.length;
    const topic = request.topic.name;
    if (this.subscriptions.acknowledgments(topic) !== undefined) owed += ACKNOWLEDGMENT_BYTES + request.messageId.length + 2 * topic.length;
    this.owedBytes += owed;
    return owed;
  }

  private publishSettled(owedBytes: number): void {
    this.inflightPublishes--;
    this.owedBytes -= owedBytes;
    this.resumeIfRelieved();
    if (this.inflightPublishes === 0 && this.disconnectPlace !== undefined) this.answers.ready(this.disconnectPlace);
  }

  /** DISCONNECT: the connection closes in its turn, once every publish before it is answered (then its RECEIPT). */
  private disconnect(receipt: string | null): void {
    if (this.disconnectPlace !== undefined) return;
    this.disconnectPlace = this.answers.reserveClose(receipt);
    this.transactions.clear();
    if (this.inflightPublishes === 0) this.answers.ready(this.disconnectPlace);
  }

  private later(receipt: string | null | undefined): LaterAnswer {
    const place = this.answers.reserve(receipt);
    return {
      place,
      receipt: () => this.answers.ready(place),
      fail: (error) => this.failAt(place, error),
    };
  }

  /**
   * Charges what was just read to the principal's publish quota; over it, reading stops until the
   * quota has refilled (as backpressure: the client's socket fills, nothing is dropped).
   */
  private chargeQuota(bytes: number): void {
    const waitMs = this.quota!.charge(bytes, this.sendsInChunk);
    this.sendsInChunk = 0;
    if (waitMs === 0 || this.readGate.has('quota')) return;
    this.readGate.pause('quota');
    this.quotaTimer = setTimeout(() => this.readGate.resume('quota'), waitMs);
  }

  private stopTimers(): void {
    clearTimeout(this.quotaTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.expiryTimer);
    this.forgetReload?.();
    this.heartbeats.stop();
  }

  // ---- the faces others see ----

  private commandContext(): CommandContext {
    const session = this;
    return {
      sessionId: this.id,
      topicQuota: new CreationQuota(this.services.autoCreatePerMinute),
      get version() {
        return session.version;
      },
      get isConnected() {
        return session.state === 'connected';
      },
      get rights() {
        if (session.rights === undefined) throw new RillError('unexpected-frame', 'not connected');
        return session.rights;
      },
      get authorizePublish() {
        if (session.authorizePublish === undefined) throw new RillError('unexpected-frame', 'not connected');
        return session.authorizePublish;
      },
      remoteAddress: this.transport.remoteAddress,
      certificateSubject: this.transport.certificateSubject,
      services: this.services,
      subscriptions: this.subscriptions,
      transactions: this.transactions,
      channel: this.channel,
      receipt: (receipt) => this.answers.receipt(receipt),
      fail: (error, receipt, details) => this.fail(error, receipt, details),
      later: (receipt) => this.later(receipt),
      connected: (version, headers, outgoingMs, incomingMs, principal, generation) =>
        this.connected(version, headers, outgoingMs, incomingMs, principal, generation),
      holdFrames: (work) => this.holdFrames(work),
      renewPrincipal: (principal) => this.renewPrincipal(principal),
      publish: (request, receipt) => this.publish(request, receipt),
      commitTransaction: (requests, countdown, offsets) => this.commitTransaction(requests, countdown, offsets),
      disconnect: (receipt) => this.disconnect(receipt),
      nextMessageId: () => `${this.id}-${++this.messageCounter}`,
      onClose: (release) => {
        this.closeHandlers.add(release);
        return () => this.closeHandlers.delete(release);
      },
    };
  }

  private deliveryChannel(): DeliveryChannel {
    const session = this;
    return {
      sessionId: this.id,
      get version() {
        return session.version;
      },
      get open() {
        return session.state === 'connected';
      },
      get writable() {
        return session.state === 'connected' && session.transport.bufferedBytes <= session.highWaterBytes;
      },
      sendFrame: (command, headers, body) => this.sendFrame(command, headers, body),
      sendBytes: (frame) => this.sendBytes(frame),
      cork: () => this.transport.cork(),
      uncork: () => this.transport.uncork(),
    };
  }

  private producerFace(): Producer {
    const session = this;
    return {
      // While an ERROR waits its turn, earlier frames' answers and acknowledgments still go out.
      get open() {
        return session.state === 'connected' || session.state === 'failing';
      },
      acknowledgments: (topic) => this.subscriptions.acknowledgments(topic),
      answered: (place) => this.answers.ready(place),
      failed: (place, error) => this.failAt(place, error),
      settled: (owedBytes) => this.publishSettled(owedBytes),
    };
  }
}
