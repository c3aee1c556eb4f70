import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { RillConfig, TlsConfig } from '../config/index.js';
import { StartupError } from './startup-error.js';

/** What a listener's connections are handed to. */
export interface ListenerHandlers {
  request: http.RequestListener;
  upgrade: (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;
  stomp: (socket: net.Socket) => void;
}

type ListenerKind = 'http' | 'stomp' | 'https' | 'stomps';

interface Listener {
  kind: ListenerKind;
  server: net.Server;
  port: number;
  /** The setting that fixes a port that cannot be used. */
  setting: string;
}

/** The ports the listeners took (0 picks a free one); a listener switched off has none. */
export type ListeningPorts = Partial<Record<ListenerKind, number>>;

/**
 * The broker's listeners: plain HTTP (with WebSocket upgrades) and STOMP over TCP, each of which
 * may be switched off, and with `tls` configured, HTTPS (with WSS) and STOMP over TLS beside them.
 */
export class Listeners {
  private readonly listeners: Listener[] = [];
  private readonly secure: tls.Server[] = [];

  constructor(
    private readonly config: RillConfig,
    handlers: ListenerHandlers,
  ) {
    const { server } = config;
    if (server.plainHttp) {
      const plain = http.createServer(handlers.request);
      plain.on('upgrade', handlers.upgrade);
      this.listeners.push({ kind: 'http', server: plain, port: server.httpPort, setting: 'server.httpPort' });
    }
    if (server.plainStomp)
      this.listeners.push({ kind: 'stomp', server: net.createServer(handlers.stomp), port: server.stompPort, setting: 'server.stompPort' });
    if (config.tls !== undefined) {
      const options = secureContextOptions(config.tls);
      const secureHttp = https.createServer(options, handlers.request);
      secureHttp.on('upgrade', handlers.upgrade);
      const secureStomp = tls.createServer(options, handlers.stomp);
      this.secure.push(secureHttp, secureStomp);
      this.listeners.push(
        { kind: 'https', server: secureHttp, port: config.tls.httpsPort, setting: 'tls.httpsPort' },
        { kind: 'stomps', server: secureStomp, port: config.tls.stompPort, setting: 'tls.stompPort' },
      );
    }
  }

  /** Listens on every port; when one fails, closes those that listen and throws (a StartupError when a setting fixes it). */
  async listen(): Promise<ListeningPorts> {
    const { host } = this.config.server;
    const outcomes = await Promise.allSettled(this.listeners.map((listener) => listen(listener.server, listener.port, host)));
    const failed = outcomes.findIndex((outcome) => outcome.status === 'rejected');
    if (failed !== -1) {
      await this.close();
      const listener = this.listeners[failed]!;
      throw listenFailure((outcomes[failed] as PromiseRejectedResult).reason, listener.port, host, listener.setting);
    }
    return Object.fromEntries(this.listeners.map((listener) => [listener.kind, (listener.server.address() as AddressInfo).port]));
  }

  /**
   * Reads the certificate files again (SIGHUP) and checks them; the returned function puts them in
   * use (for new connections; open ones keep theirs). Throws, changing nothing, when they cannot
   * be used. Whether client certificates are asked for is fixed at start-up.
   */
  prepareCertificates(config: TlsConfig | undefined): () => void {
    if (config === undefined || this.secure.length === 0) return () => {};
    const options = secureContextOptions(config);
    return () => {
      for (const server of this.secure) server.setSecureContext(options);
    };
  }

  /** Stops accepting; resolves once every listener has closed. */
  close(): Promise<void> {
    return Promise.all(this.listeners.filter((l) => l.server.listening).map((l) => closeServer(l.server))).then(() => undefined);
  }

  /**
   * Ends the HTTP connections still open (a request still waiting for its answer, a keep-alive one):
   * closing a listener waits for them, and one request waiting on a database that does not answer
   * would hold the shutdown for good. STOMP and WebSocket connections are the gateway's to end.
   */
  dropConnections(): void {
    for (const { server } of this.listeners) if (server instanceof http.Server || server instanceof https.Server) server.closeAllConnections();
  }
}

/** The TLS settings every secure listener shares; an unreadable file is the operator's to fix, named by its key. */
function secureContextOptions(config: TlsConfig): tls.TlsOptions {
  const read = (file: string, setting: string): Buffer => {
    try {
      return fs.readFileSync(file);
    } catch (error) {
      throw new StartupError(`cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, setting);
    }
  };
  const options: tls.TlsOptions = {
    cert: read(config.certFile, 'tls.certFile'),
    key: read(config.keyFile, 'tls.keyFile'),
    minVersion: config.minVersion,
    requestCert: config.clientCertificates !== 'none',
    // A client without a valid certificate is refused in the handshake only when they are required.
    rejectUnauthorized: config.clientCertificates === 'require',
  };
  if (config.caFile !== undefined) options.ca = read(config.caFile, 'tls.caFile');
  try {
    tls.createSecureContext(options);
  } catch (error) {
    throw new StartupError(`the TLS certificate and key cannot be used: ${(error as Error).message}`, 'tls.certFile');
  }
  return options;
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A listener that cannot start, as the setting that fixes it; other errors as they are. */
function listenFailure(error: unknown, port: number, host: string, setting: string): unknown {
  const where = host === '0.0.0.0' || host === '::' ? `port ${port}` : `port ${port} on ${host}`;
  switch ((error as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new StartupError(`${where} is in use`, setting);
    case 'EACCES':
      return new StartupError(`no permission to listen on ${where} (ports below 1024 need privileges)`, setting);
    case 'EADDRNOTAVAIL':
      return new StartupError(`cannot listen on ${host}: not an address of this machine`, 'server.host');
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(`cannot listen on ${host}: no such host`, 'server.host');
    default:
      return error;
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
