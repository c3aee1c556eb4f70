import { InvalidArgumentError } from 'commander';

export const DEFAULT_BROKER_URL = 'http://127.0.0.1:8080';

/** Where a broker is: its HTTP API and its STOMP-over-WebSocket endpoint, both from the one --url. */
export interface BrokerAddress {
  /** The HTTP API's base, ending in `/`: admin paths are resolved against it. */
  http: URL;
  /** The STOMP endpoint: ws(s)://host:port/stomp. */
  stomp: string;
  /** The address as the operator gave it, for messages. */
  shown: string;
}

/**
 * Reads --url. It is the broker's HTTP address (http://host:port, https for TLS), from which the
 * STOMP endpoint is derived (ws://host:port/stomp, wss for https). A STOMP address
 * (ws://host:port/stomp), which `rill tail --url` took before, is accepted too, the HTTP address
 * then being derived from it.
 */
export function brokerAddress(url: string): BrokerAddress {
  const parsed = new URL(url);
  const http = new URL(parsed.href);
  let stomp: URL;
  if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') {
    stomp = parsed;
    http.protocol = parsed.protocol === 'wss:' ? 'https:' : 'http:';
    http.pathname = '/';
  } else {
    if (!http.pathname.endsWith('/')) http.pathname += '/';
    stomp = new URL('stomp', http);
    stomp.protocol = parsed.protocol === 'https:' ? 'wss:' : 'ws:';
  }
  http.search = '';
  http.hash = '';
  return { http, stomp: stomp.href, shown: url };
}

/** The --url option's check (commander blames the flag for what it throws). */
export function parseBrokerUrl(value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new InvalidArgumentError(`--url takes the broker's address, e.g. ${DEFAULT_BROKER_URL}, not "${value}"`);
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) {
    throw new InvalidArgumentError(`--url takes an http:// or https:// address (e.g. ${DEFAULT_BROKER_URL}), not "${value}"`);
  }
  return value;
}
