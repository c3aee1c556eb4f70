import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import type { BrokerSession } from './command-line.js';
import { BrokerRefusedError, BrokerUnreachableError } from './failures.js';

/** Between two attempts to reconnect after the broker went away (a restart takes a few seconds). */
const RECONNECT_DELAY_MS = 500;
/** A command that stops at the end of the log waits this long for the broker to come back, then gives up. */
const GIVE_UP_AFTER_MS = 60_000;
/** Heart-beats both ways, so that a broker that vanished without closing the socket is noticed. */
const HEARTBEAT_MS = 10_000;

/**
 * A @stomp/stompjs client over the `ws` package for a CLI command, logging in as the session says.
 * With `reconnect`, stompjs connects again by itself whenever the connection drops; the caller
 * subscribes again in onConnect.
 */
export function stompClient(session: BrokerSession, { reconnect }: { reconnect: boolean }): Client {
  return new Client({
    webSocketFactory: () => new WebSocket(session.address.stomp, ['v12.stomp']),
    reconnectDelay: reconnect ? RECONNECT_DELAY_MS : 0,
    heartbeatIncoming: HEARTBEAT_MS,
    heartbeatOutgoing: HEARTBEAT_MS,
    connectHeaders: session.credentials.connectHeaders,
  });
}

/** A STOMP topic destination: names are limited to A-Z a-z 0-9 . _ - by the broker, so they go in as they are. */
export function topicDestination(topic: string): string {
  return `/topic/${topic}`;
}

/**
 * How a reading command (a tail, a group member) lives with its reconnecting client, and ends:
 * the first connection failing, or an ERROR other than the broker's own retriable "going away",
 * fails the command (`reject`); a lost connection is announced on stderr and, unless the command
 * follows for ever, given GIVE_UP_AFTER_MS to come back. The command calls `connected` at each
 * (re)connection and `end` once it is done.
 */
export class ConnectionWatch {
  /** Connections made so far (the first is 1). */
  connections = 0;
  /** The command ended (it handles nothing more). */
  ended = false;
  private lostAt: number | null = null;
  private giveUp: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: Client,
    private readonly session: BrokerSession,
    private readonly options: { name: string; follow: boolean; reject: (error: Error) => void; onEnd?: () => void },
  ) {
    client.onStompError = (frame) => {
      // A broker shutting down says so (retriable) before it closes: connect again once it is back.
      if (this.connections > 0 && frame.headers.retriable === 'true') return;
      this.fail(new BrokerRefusedError(frame.headers.code ?? 'error', frame.headers.message ?? 'error from the broker', null));
    };
    client.onWebSocketClose = () => this.lost();
  }

  /** A (re)connection: returns its number; after a loss, `resuming` says on stderr what happens now. */
  connected(resuming: string): number {
    if (this.lostAt !== null) process.stderr.write(`${this.options.name}: reconnected to ${this.session.address.shown}; ${resuming}\n`);
    this.lostAt = null;
    clearTimeout(this.giveUp);
    return ++this.connections;
  }

  /** Ends the command once: timers stop, the client disconnects, then `outcome` runs. */
  end(outcome: () => void): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.giveUp);
    this.options.onEnd?.();
    void this.client.deactivate().then(outcome);
  }

  private fail(error: Error): void {
    this.end(() => this.options.reject(error));
  }

  private lost(): void {
    const shown = this.session.address.shown;
    if (this.ended) return;
    if (this.connections === 0) return this.fail(new BrokerUnreachableError(shown));
    if (this.lostAt !== null) return;
    this.lostAt = Date.now();
    process.stderr.write(`${this.options.name}: lost the connection to ${shown}; reconnecting\n`);
    if (!this.options.follow) {
      this.giveUp = setTimeout(() => this.fail(new BrokerUnreachableError(shown, `gone for ${GIVE_UP_AFTER_MS / 1000} s`)), GIVE_UP_AFTER_MS);
    }
  }
}
