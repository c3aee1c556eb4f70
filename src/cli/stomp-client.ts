import { Client } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import type { BrokerSession } from './command-line.js';

/** Between two attempts to reconnect after the broker went away (a restart takes a few seconds). */
const RECONNECT_DELAY_MS = 500;
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
