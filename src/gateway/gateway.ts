import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Broker } from '../broker/index.js';
import type { RillConfig } from '../config/index.js';
import type { GroupCoordinator } from '../coordinator/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { Security } from '../security/index.js';
import type { TransactionCoordinator } from '../transactions/index.js';
import { Publisher } from './publishing/index.js';
import type { SessionServices } from './stomp/command-context.js';
import { StompSession, type ConnectionView } from './stomp/session.js';
import { TcpTransport, WebSocketTransport, type Transport, type TransportEvents } from './transport/index.js';

/**
 * Owns the STOMP sessions of both listeners: admits connections up to the configured limit and
 * stops reading from every producer while the broker holds more unstored data than allowed. (Each
 * session also stops reading from its own connection while its client does not take what it is
 * sent; the session's read gate keeps the two reasons apart.)
 */
export class Gateway {
  private readonly sessions = new Set<StompSession>();
  private readonly services: SessionServices;
  private readonly emptyWaiters: Array<() => void> = [];
  private paused = false;
  /** How many times reading was paused because storage fell behind (for monitoring and tests). */
  pauses = 0;

  constructor(
    private readonly config: RillConfig,
    private readonly broker: Broker,
    coordinator: GroupCoordinator,
    private readonly logger: Logger,
    serverName: string,
    readonly security: Security,
    transactions?: TransactionCoordinator,
  ) {
    this.services = {
      stomp: config.stomp,
      serverName,
      publisher: new Publisher(broker, config.topics.keylessPartitioner, transactions, config.limits.maxDelayMs),
      topics: broker.topics,
      log: broker,
      coordinator,
      logger,
      security,
      connectionHighWaterBytes: config.limits.connectionHighWaterBytes,
      autoCreatePerMinute: config.limits.autoCreatePerMinute,
    };
    broker.onInflightLow(() => this.resumeReading());
    broker.topics.listen({ deleted: (topic) => this.topicDeleted(topic.name) });
  }

  /** Subscriptions that consume a deleted topic end, with an ERROR, together with their connections. */
  private topicDeleted(topic: string): void {
    for (const session of this.sessions) session.topicDeleted(topic);
  }

  /** The publish path's router stage, for requests that publish (the HTTP API's transactions). */
  get publisher(): Publisher {
    return this.services.publisher;
  }

  /** Every open STOMP connection, as operators see it. */
  connections(): ConnectionView[] {
    return [...this.sessions].map((session) => session.describe());
  }

  /** Closes one connection for an operator (an ERROR saying so first); false when there is no such session. */
  closeConnection(session: string, reason: string): boolean {
    for (const candidate of this.sessions) {
      if (candidate.id !== session) continue;
      candidate.closeByOperator(reason);
      return true;
    }
    return false;
  }

  acceptWebSocket(socket: WebSocket, rawSocket: Socket): void {
    this.admit((events) => new WebSocketTransport(socket, rawSocket, events));
  }

  acceptTcp(socket: Socket): void {
    this.admit((events) => new TcpTransport(socket, events));
  }

  /** The transport needs the session's events and the session its transport: the events forward to it. */
  private admit(connect: (events: TransportEvents) => Transport): void {
    let session: StompSession | undefined;
    const transport = connect({
      onData: (chunk) => {
        session?.onData(chunk);
        if (!this.paused && this.broker.overloaded) this.pauseReading();
      },
      onDrain: () => session?.onDrain(),
      onClose: () => session?.onClose(),
      onRefused: (closeCode, reason) => session?.onRefused(closeCode, reason),
    });
    session = new StompSession(transport, this.services, (closed) => this.closed(closed));
    const { maxConnections } = this.config.server;
    if (this.sessions.size >= maxConnections) {
      this.logger.warn({ remote: transport.remoteAddress, limit: maxConnections }, 'connection refused: at the connection limit');
      session.refuse(new RillError('too-many-connections', `server is at its limit of ${maxConnections} connections; try again later`));
      return;
    }
    this.sessions.add(session);
    if (this.paused) session.pauseForStorage();
  }

  private closed(session: StompSession): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0) for (const resolve of this.emptyWaiters.splice(0)) resolve();
  }

  private pauseReading(): void {
    this.paused = true;
    this.pauses++;
    this.logger.warn({ inflightBytes: this.broker.inflightBytes }, 'storage is behind: pausing reads from clients');
    for (const session of this.sessions) session.pauseForStorage();
  }

  private resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.logger.info({ inflightBytes: this.broker.inflightBytes }, 'storage caught up: resuming reads from clients');
    for (const session of this.sessions) session.resumeForStorage();
  }

  /** Closes every session's connection once its queued frames are written. */
  closeAll(): void {
    for (const session of this.sessions) session.end();
  }

  /** The broker is shutting down: each session answers what it has read, then says so with an ERROR and closes. */
  shutDown(): void {
    for (const session of this.sessions) session.shutDown();
  }

  /** Resolves once no session is open (at once if none is). */
  whenEmpty(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  destroyAll(): void {
    for (const session of this.sessions) session.destroy();
  }
}
