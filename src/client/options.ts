import type { IStompSocket } from '@stomp/stompjs';
import { invalidArgument, type RillError } from './errors.js';

/** What stompjs needs of a WebSocket: the browser's, or `ws`'s in Node. */
export type WebSocketLike = IStompSocket;

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'closed';

export interface ClientOptions {
  /** The broker's STOMP-over-WebSocket endpoint, `ws://host:8080/stomp` (`wss://` with TLS). */
  url: string;
  /** User name and password, where the broker has authentication on. */
  login?: string;
  passcode?: string;
  /** A JSON Web Token instead of a password (sent as the passcode); replace it before it expires with updateToken(). */
  token?: string;
  /**
   * The WebSocket class to connect with. Browsers have one (the default); Node 20 has none: pass
   * `WebSocket` from the `ws` package.
   */
  WebSocket?: WebSocketConstructor;
  /** Makes each WebSocket instead (a proxy, custom TLS options); wins over `WebSocket`. */
  webSocketFactory?: (url: string, protocols: string[]) => WebSocketLike;
  /** Wait between two attempts to connect again after the connection dropped; 0: no reconnecting (default 1000). */
  reconnectDelayMs?: number;
  /** Heart-beats both ways, so that a broker gone silent is noticed; 0: none (default 10000). */
  heartbeatMs?: number;
  /** Most publishes awaiting the broker's acknowledgment at once: publish() waits for room beyond it (default 1000). */
  maxInFlight?: number;
  /** Most times a message is sent: the first time, then after reconnects or retriable failures (default 5). */
  maxPublishAttempts?: number;
  /** Wait before sending a message again after a retriable failure, times the attempts so far (default 200). */
  retryDelayMs?: number;
  /** Each connection to the broker (`reconnected` after the first), with the broker's session id. */
  onConnected?: (info: { session: string; reconnected: boolean }) => void;
  /** The connection dropped; the client connects again by itself unless it is closed. */
  onDisconnected?: (reason: RillError) => void;
  /** A failure no promise of yours receives: a subscription the broker refused after a reconnect, a message handler that threw. */
  onError?: (error: RillError) => void;
  /** stompjs' debug lines. */
  debug?: (line: string) => void;
}

/** The options with every default filled in. */
export interface Settings {
  url: string;
  connectHeaders: Record<string, string>;
  createSocket: () => WebSocketLike;
  reconnectDelayMs: number;
  heartbeatMs: number;
  maxInFlight: number;
  maxPublishAttempts: number;
  retryDelayMs: number;
  onConnected: (info: { session: string; reconnected: boolean }) => void;
  onDisconnected: (reason: RillError) => void;
  onError: (error: RillError) => void;
  debug: ((line: string) => void) | undefined;
}

/** The STOMP versions Rill speaks, as WebSocket subprotocols, highest first. */
const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

function socketMaker(options: ClientOptions): () => WebSocketLike {
  const { url, webSocketFactory } = options;
  if (webSocketFactory !== undefined) return () => webSocketFactory(url, [...STOMP_SUBPROTOCOLS]);
  const Socket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (Socket === undefined) {
    throw invalidArgument("no WebSocket to connect with: in Node 20 pass { WebSocket } from the 'ws' package (browsers have one)");
  }
  return () => new Socket(url, [...STOMP_SUBPROTOCOLS]);
}

function count(name: string, value: number | undefined, fallback: number, least: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < least) throw invalidArgument(`${name} must be a whole number, at least ${least}`);
  return value;
}

export function settingsOf(options: ClientOptions): Settings {
  if (typeof options.url !== 'string' || !/^wss?:\/\//.test(options.url)) throw invalidArgument(`url must be a ws:// or wss:// address, not "${options.url}"`);
  const connectHeaders: Record<string, string> = {};
  if (options.login !== undefined) connectHeaders.login = options.login;
  const passcode = options.token ?? options.passcode;
  if (passcode !== undefined) connectHeaders.passcode = passcode;
  const ignore = (): void => {};
  return {
    url: options.url,
    connectHeaders,
    createSocket: socketMaker(options),
    reconnectDelayMs: count('reconnectDelayMs', options.reconnectDelayMs, 1000, 0),
    heartbeatMs: count('heartbeatMs', options.heartbeatMs, 10_000, 0),
    maxInFlight: count('maxInFlight', options.maxInFlight, 1000, 1),
    maxPublishAttempts: count('maxPublishAttempts', options.maxPublishAttempts, 5, 1),
    retryDelayMs: count('retryDelayMs', options.retryDelayMs, 200, 0),
    onConnected: options.onConnected ?? ignore,
    onDisconnected: options.onDisconnected ?? ignore,
    onError: options.onError ?? ignore,
    debug: options.debug,
  };
}
