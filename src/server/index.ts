import type http from 'node:http';
import type net from 'node:net';
import { WebSocketServer } from 'ws';
import { Broker } from '../broker/index.js';
import { isLoopback, type RillConfig } from '../config/index.js';
import { brokerOffsetLog, GroupCoordinator, OffsetStore, type OffsetLog } from '../coordinator/index.js';
import { TransactionCoordinator } from '../transactions/index.js';
import { Gateway, httpRoutes } from '../gateway/index.js';
import { BrokerMetrics } from '../metrics/index.js';
import { OriginPolicy, Security, SecuritySettingError } from '../security/index.js';
import { createLogger, type Logger } from '../logging/index.js';
import { NewerSchemaError, NodeIdTakenError, PostgresLogStore } from '../postgres/index.js';
import { Listeners } from './listeners.js';
import { StartupError } from './startup-error.js';

export { StartupError } from './startup-error.js';
import { DataDirectoryAccessError, DataDirectoryLock, DataDirectoryLockedError, LegacyDataFormatError } from '../storage/index.js';

const SERVER_NAME = 'rill/0.1.0';
const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

export interface RillServer {
  /** The plain listeners' ports (0 when switched off). */
  readonly httpPort: number;
  readonly stompPort: number;
  /** The TLS listeners' ports, when `tls` is configured. */
  readonly httpsPort: number | undefined;
  readonly stompTlsPort: number | undefined;
  readonly broker: Broker;
  readonly gateway: Gateway;
  readonly coordinator: GroupCoordinator;
  /**
   * Replaces users, tokens and ACLs (connections lose at once what they may no longer do) and
   * reads the TLS certificate files again (for new connections). Throws, changing nothing, when a
   * certificate file cannot be used.
   */
  reload(settings: Pick<RillConfig, 'auth' | 'tls'>): void;
  /** Stops accepting, lets stored-but-unanswered publishes finish, closes sessions and the broker. */
  close(): Promise<void>;
}

/**
 * Locks the data directory, then starts the broker workers, the HTTP/WebSocket listener and the
 * TCP STOMP listener. When a part fails to start, those that had started are stopped and the lock
 * is released before the error is thrown (a StartupError when a setting can fix it).
 */
export async function startServer(config: RillConfig, logger: Logger = createLogger(config.log.level)): Promise<RillServer> {
  const lock = lockDataDirectory(config.storage.dataDir, logger);
  const started: Array<() => unknown> = [];
  try {
    return await assemble(config, logger, lock, started);
  } catch (error) {
    for (const stop of started.reverse()) {
      try {
        await stop();
      } catch (stopError) {
        logger.warn({ err: stopError }, 'failed start-up: stopping a part that had started failed');
      }
    }
    lock.release();
    throw error;
  }
}

/** Takes the data directory's lock before anything reads or recovers it. */
function lockDataDirectory(dataDir: string, logger: Logger): DataDirectoryLock {
  let lock: DataDirectoryLock;
  try {
    lock = DataDirectoryLock.acquire(dataDir);
  } catch (error) {
    if (error instanceof DataDirectoryLockedError) {
      if (error.holder === null) {
        throw new StartupError(
          `data directory ${error.dataDir} is locked by ${error.lockFile}, which Rill cannot read`,
          'storage.dataDir',
          'delete that file if no broker uses the directory',
        );
      }
      throw new StartupError(
        error.message,
        'storage.dataDir',
        'stop that broker',
        `to use another directory (if no broker runs there, delete ${error.lockFile})`,
      );
    }
    if (error instanceof DataDirectoryAccessError) throw new StartupError(error.message, 'storage.dataDir');
    throw error;
  }
  if (lock.tookOverFrom !== null) {
    logger.warn({ lockFile: lock.lockFile, previousHolder: lock.tookOverFrom }, 'took over the data directory lock of a broker that is gone');
  }
  return lock;
}

/** Starts the parts in order; `started` collects how to stop each one, for a start-up that fails half-way. */
async function assemble(config: RillConfig, logger: Logger, lock: DataDirectoryLock, started: Array<() => unknown>): Promise<RillServer> {
  // Cluster mode: partitions, committed offsets and groups are shared with the other nodes through the database.
  const shared = config.storage.backend === 'postgres' ? await openPostgresStore(config, logger) : undefined;
  const broker = await startBroker(config, logger, shared);
  started.push(() => broker.close());
  const { coordinator: settings } = config;
  const coordinator = new GroupCoordinator(
    broker,
    new OffsetStore(shared === undefined ? brokerOffsetLog(broker) : await offsetTableOf(shared, broker), { logger, shared: shared !== undefined }),
    {
      defaults: {
        assignor: settings.assignor,
        sessionTimeoutMs: settings.sessionTimeoutMs,
        resetPolicy: settings.resetPolicy,
        autoCommitIntervalMs: settings.autoCommitIntervalMs,
        maxDeliveries: settings.maxDeliveries,
        deadLetterSuffix: settings.deadLetterSuffix,
        deadLetterExpired: settings.deadLetterExpired,
      },
      removeOnDisconnect: settings.removeOnDisconnect,
      ...(shared === undefined ? {} : { directory: shared.groups }),
    },
    logger,
  );
  started.push(() => coordinator.stop());
  await coordinator.start();
  broker.topics.onPartitionsAdded((topic) => coordinator.partitionsAdded(topic));
  broker.topics.listen({
    deleted: (topic) =>
      void coordinator
        .topicDeleted(topic.name)
        .catch((error: unknown) => logger.error({ err: error, topic: topic.name }, "forgetting a deleted topic's committed offsets failed")),
  });
  // Transactions committed before a crash are completed before anything reads the partitions back.
  // In cluster mode each node has its own transaction log: a node completes its own transactions after a crash, never those another node is applying.
  const transactionLog = broker.nodeId === undefined ? undefined : `__transaction_state.${broker.nodeId}`;
  const transactions = new TransactionCoordinator(broker, logger, coordinator, transactionLog);
  started.push(() => transactions.close());
  await transactions.recover();
  broker.startDeduplication();
  const security = startSecurity(config, logger);
  announceAccess(config, security, logger);
  const origins = new OriginPolicy(config.server.allowedOrigins);
  const gateway = new Gateway(config, broker, coordinator, logger, SERVER_NAME, security, transactions);
  const paths = new Set(config.server.websocketPaths);

  const webSockets = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // Leave room above the STOMP frame limit so that the codec, not ws, reports oversized frames.
    maxPayload: config.stomp.maxFrameBytes * 2 + 64 * 1024,
    // Text messages are checked for UTF-8 by the transport, which answers a bad one with an ERROR frame before closing.
    skipUTF8Validation: true,
    handleProtocols: (offered) => STOMP_SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const router = httpRoutes({ metrics: new BrokerMetrics({ broker, coordinator, gateway }) });
  const httpServices = { broker, coordinator, publisher: gateway.publisher, security, origins, connections: gateway };
  const upgrade = (request: http.IncomingMessage, socket: net.Socket, head: Buffer): void => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (!paths.has(path)) {
      socket.end(`HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    // A browser page of another origin may not open a connection that carries the user's cookies and network position.
    if (!origins.allows(request.headers.origin, request.headers.host)) {
      security.audit.warn({ remote: socket.remoteAddress, origin: request.headers.origin }, 'WebSocket from a foreign origin refused');
      const reason = 'origin not allowed (server.allowedOrigins)';
      socket.end(`HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${reason.length}\r\n\r\n${reason}`);
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (webSocket) => gateway.acceptWebSocket(webSocket, socket));
  };
  const listeners = new Listeners(config, {
    request: (request, response) => void router.handle(httpServices, request, response),
    upgrade,
    stomp: (socket) => gateway.acceptTcp(socket),
  });
  const ports = await listeners.listen();
  const httpPort = ports.http ?? 0;
  const stompPort = ports.stomp ?? 0;
  lock.update({ httpPort, stompPort });
  logger.info(
    {
      httpPort: ports.http,
      stompPort: ports.stomp,
      httpsPort: ports.https,
      stompTlsPort: ports.stomps,
      host: config.server.host,
      websocketPaths: [...paths],
      workers: broker.workerCount,
      dataDir: config.storage.dataDir,
      durability: config.storage.durability.mode,
    },
    'listening',
  );

  let closing: Promise<void> | null = null;
  return {
    httpPort,
    stompPort,
    httpsPort: ports.https,
    stompTlsPort: ports.stomps,
    broker,
    gateway,
    coordinator,
    reload: (settings) => {
      const { auth } = settings;
      // The listeners keep the address they bound at start-up: a reload cannot open a broker that
      // other machines reach to anyone by removing its users.
      const certificates = (config.tls?.clientCertificates ?? 'none') !== 'none';
      if (auth.users.length === 0 && auth.tokens === undefined && !certificates && !auth.allowAnonymous && !isLoopback(config.server.host)) {
        throw new StartupError(
          `the broker listens on ${config.server.host}, which other machines reach, and the reloaded config has no users: nothing was reloaded`,
          'auth.allowAnonymous',
          'keep users (or tokens)',
        );
      }
      // Everything is read and checked before anything changes: a reload that fails leaves all as it was.
      const useCertificates = listeners.prepareCertificates(settings.tls);
      security.reload(settings.auth);
      useCertificates();
    },
    close: () => {
      closing ??= (async () => {
        // Stop accepting; stop handling frames; answer every frame already read (publishes once
        // stored); then each client gets an ERROR saying the broker is going away, and is closed.
        const stopped = listeners.close();
        // The connections about to close are no consumer's failure: nothing counts towards dead-lettering.
        coordinator.prepareShutdown();
        gateway.shutDown();
        await withTimeout(
          Promise.all([broker.whenIdle(), transactions.whenIdle()]).then(() => undefined),
          5000,
        );
        await withTimeout(gateway.whenEmpty(), 2000);
        coordinator.stop();
        transactions.close();
        gateway.destroyAll();
        webSockets.close();
        listeners.dropConnections();
        await stopped;
        await broker.close();
        lock.release();
        logger.info('stopped');
      })();
      return closing;
    },
  };
}

function startSecurity(config: RillConfig, logger: Logger): Security {
  try {
    return new Security(config.auth, logger, (config.tls?.clientCertificates ?? 'none') !== 'none');
  } catch (error) {
    if (error instanceof SecuritySettingError) throw new StartupError(error.problem, error.setting);
    throw error;
  }
}

/** Says at start-up who may connect, and warns when anyone may. */
function announceAccess(config: RillConfig, security: Security, logger: Logger): void {
  const { auth, server } = config;
  if (security.enabled) {
    logger.info(
      { users: auth.users.length, tokens: auth.tokens !== undefined, acls: auth.acls.length, allowAnonymous: auth.allowAnonymous },
      'authentication on',
    );
  } else if (auth.allowAnonymous) {
    logger.warn({ host: server.host }, 'authentication off (auth.allowAnonymous): anyone who can reach the broker may use it');
  } else {
    logger.info(
      { host: server.host },
      'no users configured: authentication is off and the broker listens on this machine only; configure auth.users to open it',
    );
  }
}

/** Starts the broker; a data directory in the old record format is the operator's to convert, with the command named. */
async function startBroker(config: RillConfig, logger: Logger, store: PostgresLogStore | undefined): Promise<Broker> {
  try {
    return await Broker.start(config, logger, store);
  } catch (error) {
    if (error instanceof LegacyDataFormatError) {
      throw new StartupError(error.problem, 'storage.dataDir', `convert it with \`${error.command}\``, 'to use another directory');
    }
    throw error;
  }
}

/** Cluster mode's store; a database it cannot reach or use is a start-up error that names the setting. */
async function openPostgresStore(config: RillConfig, logger: Logger): Promise<PostgresLogStore> {
  try {
    return await PostgresLogStore.open(config, logger);
  } catch (error) {
    if (error instanceof NewerSchemaError) throw new StartupError(error.message, 'storage.postgres.url', 'upgrade this node', 'to use another database');
    if (error instanceof NodeIdTakenError) throw new StartupError(error.message, 'storage.nodeId', 'stop that node', 'to another id');
    const reason = (error as Error).message;
    throw new StartupError(
      `cannot use the PostgreSQL database of storage.postgres.url: ${reason}`,
      'storage.postgres.url',
      'check that the database runs and the URL, user and password are right',
    );
  }
}

/**
 * Cluster mode's committed offsets, one row per key. A database whose offsets are still in the
 * `__consumer_offsets` log (written by a Rill before the table) has them copied over once.
 */
async function offsetTableOf(store: PostgresLogStore, broker: Broker): Promise<OffsetLog> {
  if (broker.topics.get('__consumer_offsets') !== undefined) await store.offsetTable.adopt(brokerOffsetLog(broker));
  return store.offsetTable;
}

/** Waits for `promise`, but no longer than `timeoutMs`: shutdown goes on either way. */
async function withTimeout(promise: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
