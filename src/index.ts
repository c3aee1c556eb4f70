import { parseConfig, type RillConfigInput } from './config/index.js';
import { createLogger, type Logger } from './logging/index.js';
import { startServer } from './server/index.js';

/*
 * Rill as a library (`import { startBroker } from 'rill'`): a broker started and stopped in this
 * process, configured with the same settings as the configuration file (docs/configuration.md).
 */

export { ConfigError } from './config/index.js';
export { StartupError } from './server/index.js';
export type { Logger } from './logging/index.js';

/** A broker running in this process. */
export interface RunningBroker {
  /** The plain listeners' ports (0 when switched off): ask for port 0 to get free ones. */
  readonly httpPort: number;
  readonly stompPort: number;
  /** The TLS listeners' ports, when `tls` is configured. */
  readonly httpsPort: number | undefined;
  readonly stompTlsPort: number | undefined;
  /** Where clients reach it: the HTTP API, STOMP over WebSocket, STOMP over TCP. */
  readonly urls: { readonly http: string; readonly websocket: string; readonly stomp: string };
  /** Reloads users, tokens, ACLs, quotas and TLS certificates from `config` (other settings need a restart), as SIGHUP does. */
  reload(config: BrokerConfig): void;
  /** Answers what clients sent, closes their connections and the logs, and releases the data directory. */
  close(): Promise<void>;
}

/** The broker's settings, as in the configuration file; every one has a default. */
export type BrokerConfig = RillConfigInput;

export interface StartBrokerOptions {
  /** Where the broker logs (pino); by default JSON lines on stdout at `log.level`. */
  logger?: Logger;
}

/**
 * Starts a broker: checks `config` (throws ConfigError naming the setting at fault), locks its
 * data directory, recovers it and opens the listeners (throws StartupError naming the setting that
 * fixes a port in use or an unusable directory). Resolves once it serves.
 */
export async function startBroker(config: BrokerConfig = {}, options: StartBrokerOptions = {}): Promise<RunningBroker> {
  const checked = parseConfig(config, 'the broker configuration');
  const server = await startServer(checked, options.logger ?? createLogger(checked.log.level, { component: 'rill' }));
  const host = checked.server.host === '0.0.0.0' || checked.server.host === '::' ? '127.0.0.1' : checked.server.host;
  const address = host.includes(':') ? `[${host}]` : host;
  return {
    httpPort: server.httpPort,
    stompPort: server.stompPort,
    httpsPort: server.httpsPort,
    stompTlsPort: server.stompTlsPort,
    urls: {
      http: `http://${address}:${server.httpPort}`,
      websocket: `ws://${address}:${server.httpPort}/stomp`,
      stomp: `tcp://${address}:${server.stompPort}`,
    },
    reload: (next) => server.reload(parseConfig(next, 'the broker configuration')),
    close: () => server.close(),
  };
}
