import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { Broker } from '../broker/index.js';
import type { RillConfig } from '../config/index.js';
import { brokerOffsetLog, GroupCoordinator, OffsetStore } from '../coordinator/index.js';
import { Gateway, httpRoutes } from '../gateway/index.js';
import { createLogger, type Logger } from '../logging/index.js';

const SERVER_NAME = 'rill/0.1.0';
const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

export interface RillServer {
  readonly httpPort: number;
  readonly stompPort: number;
  readonly broker: Broker;
  readonly gateway: Gateway;
  readonly coordinator: GroupCoordinator;
  /** Stops accepting, lets stored-but-unanswered publishes finish, closes sessions and the broker. */
  close(): Promise<void>;
}

/** Starts the broker workers, the HTTP/WebSocket listener and the TCP STOMP listener. */
export async function startServer(config: RillConfig, logger: Logger = createLogger(config.log.level)): Promise<RillServer> {
  const broker = Broker.start(config, logger);
  const { coordinator: settings } = config;
  const coordinator = new GroupCoordinator(
    broker,
    new OffsetStore(brokerOffsetLog(broker), { logger }),
    {
      defaults: {
        assignor: settings.assignor,
        sessionTimeoutMs: settings.sessionTimeoutMs,
        resetPolicy: settings.resetPolicy,
        autoCommitIntervalMs: settings.autoCommitIntervalMs,
        maxDeliveries: settings.maxDeliveries,
        deadLetterSuffix: settings.deadLetterSuffix,
      },
      removeOnDisconnect: settings.removeOnDisconnect,
    },
    logger,
  );
  await coordinator.start();
  broker.topics.onPartitionsAdded((topic) => coordinator.partitionsAdded(topic));
  const gateway = new Gateway(config, broker, coordinator, logger, SERVER_NAME);
  const paths = new Set(config.server.websocketPaths);

  const webSockets = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // Leave room above the STOMP frame limit so that the codec, not ws, reports oversized frames.
    maxPayload: config.stomp.maxFrameBytes * 2 + 64 * 1024,
    handleProtocols: (offered) => STOMP_SUBPROTOCOLS.find((p) => offered.has(p)) ?? false,
  });
  const router = httpRoutes();
  const httpServer = http.createServer((request, response) => void router.handle({ broker, coordinator }, request, response));
  httpServer.on('upgrade', (request, socket: net.Socket, head) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (!paths.has(path)) {
      socket.end(`HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (webSocket) => gateway.acceptWebSocket(webSocket, socket));
  });
  const tcpServer = net.createServer((socket) => gateway.acceptTcp(socket));

  await Promise.all([listen(httpServer, config.server.httpPort, config.server.host), listen(tcpServer, config.server.stompPort, config.server.host)]);
  const httpPort = (httpServer.address() as AddressInfo).port;
  const stompPort = (tcpServer.address() as AddressInfo).port;
  logger.info(
    {
      httpPort,
      stompPort,
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
    broker,
    gateway,
    coordinator,
    close: () => {
      closing ??= (async () => {
        const stopped = Promise.all([closeServer(httpServer), closeServer(tcpServer)]);
        await withTimeout(broker.whenIdle(), 5000);
        gateway.closeAll();
        await withTimeout(gateway.whenEmpty(), 1000);
        coordinator.stop();
        gateway.destroyAll();
        webSockets.close();
        await stopped;
        await broker.close();
        logger.info('stopped');
      })();
      return closing;
    },
  };
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

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Waits for `promise`, but no longer than `timeoutMs`: shutdown goes on either way. */
async function withTimeout(promise: Promise<void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  clearTimeout(timer);
}
