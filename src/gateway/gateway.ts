import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { RillConfig } from '../config/index.js';
import { RoundRobin, type Broker } from '../broker/index.js';
import type { GroupCoordinator } from '../coordinator/index.js';
import type { Logger } from '../logging/index.js';
import { encodeFrame } from '../protocol/stomp/index.js';
import { StompSession, type GatewayContext } from './session.js';
import { TcpTransport, WebSocketTransport, type Transport, type TransportEvents } from './transport/index.js';

/**
 * Owns the STOMP sessions of both listeners: admits connections up to the configured limit and
 * stops reading from every producer while the broker holds more unstored data than allowed.
 */
export class Gateway {
  readonly sessions = new Set<StompSession>();
  private readonly context: GatewayContext;
  private paused = false;
  private readonly emptyWaiters: Array<() => void> = [];
  /** How many times reading was paused because storage fell behind (for monitoring and tests). */
  pauses = 0;

  constructor(
    private readonly config: RillConfig,
    readonly broker: Broker,
    coordinator: GroupCoordinator,
    private readonly logger: Logger,
    serverName: string,
  ) {
    this.context = {
      config,
      broker,
      coordinator,
      roundRobin: new RoundRobin(),
      logger,
      serverName,
      onSessionClosed: (session) => {
        this.sessions.delete(session);
        if (this.sessions.size === 0) for (const resolve of this.emptyWaiters.splice(0)) resolve();
      },
    };
    broker.onInflightLow(() => this.resumeReading());
  }

  acceptWebSocket(socket: WebSocket, rawSocket: Socket): void {
    const session = new StompSession(this.context);
    this.admit(session, new WebSocketTransport(socket, rawSocket, this.wrap(session)));
  }

  acceptTcp(socket: Socket): void {
    const session = new StompSession(this.context);
    this.admit(session, new TcpTransport(socket, this.wrap(session)));
  }

  private wrap(session: StompSession): TransportEvents {
    return {
      onData: (chunk: Buffer) => {
        session.onData(chunk);
        if (!this.paused && this.broker.overloaded) this.pauseReading();
      },
      onDrain: () => session.onDrain(),
      onClose: () => session.onClose(),
    };
  }

  private admit(session: StompSession, transport: Transport): void {
    session.attach(transport);
    if (this.sessions.size >= this.config.server.maxConnections) {
      this.logger.warn({ remote: transport.remoteAddress, limit: this.config.server.maxConnections }, 'connection refused: at the connection limit');
      transport.send(encodeFrame('ERROR', { message: `server is at its limit of ${this.config.server.maxConnections} connections; try again later` }, 'too many connections'));
      session.state = 'closing';
      transport.end();
      return;
    }
    this.sessions.add(session);
    if (this.paused) this.pauseSession(session);
  }

  private pauseReading(): void {
    this.paused = true;
    this.pauses++;
    this.logger.warn({ inflightBytes: this.broker.inflightBytes }, 'storage is behind: pausing reads from clients');
    for (const session of this.sessions) this.pauseSession(session);
  }

  private pauseSession(session: StompSession): void {
    session.readingPaused = true;
    session.transport.pauseReading();
  }

  private resumeReading(): void {
    if (!this.paused) return;
    this.paused = false;
    this.logger.info({ inflightBytes: this.broker.inflightBytes }, 'storage caught up: resuming reads from clients');
    for (const session of this.sessions) {
      session.readingPaused = false;
      session.transport.resumeReading();
    }
  }

  /** Closes every session's connection. */
  closeAll(): void {
    for (const session of this.sessions) session.transport.end();
  }

  /** Resolves once no session is open (at once if none is). */
  whenEmpty(): Promise<void> {
    if (this.sessions.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.emptyWaiters.push(resolve));
  }

  destroyAll(): void {
    for (const session of this.sessions) session.transport.destroy();
  }
}
