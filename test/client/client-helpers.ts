import { WebSocket } from 'ws';
import { type ClientOptions, connect, type RillClient, type RillError } from '../../src/client/index.js';
import { until } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import type { TestServer } from '../helpers/server.js';

/** A client as Node uses it (ws's WebSocket), reconnecting quickly, with every connection change recorded. */
export interface WatchedClient {
  client: RillClient;
  /** Every WebSocket it opened, the current one last. */
  sockets: WebSocket[];
  /** While true, its attempts to connect fail (as with the network down). */
  offline: boolean;
  /** Sessions connected, in order. */
  sessions: string[];
  disconnects: RillError[];
  errors: RillError[];
}

export async function watchedClient(server: TestServer, options: Partial<ClientOptions> = {}): Promise<WatchedClient> {
  const sessions: string[] = [];
  const disconnects: RillError[] = [];
  const errors: RillError[] = [];
  const sockets: WebSocket[] = [];
  const watched = { sockets, sessions, disconnects, errors, offline: false };
  const client = await connect({
    url: server.wsUrl,
    webSocketFactory: (url, protocols) => {
      // Port 1: nothing listens there, so the attempt fails at once.
      const socket = new WebSocket(watched.offline ? 'ws://127.0.0.1:1/' : url, protocols);
      sockets.push(socket);
      return socket;
    },
    reconnectDelayMs: 50,
    heartbeatMs: 0,
    onConnected: ({ session }) => sessions.push(session),
    onDisconnected: (reason) => disconnects.push(reason),
    onError: (error) => errors.push(error),
    ...options,
  });
  return Object.assign(watched, { client });
}

/**
 * Ends the client's connection, and waits for the client to be back on a new one: `operator`
 * closes it from the broker's side (DELETE /v1/connections/<session>), `network` drops the socket
 * under the client (the broker sees a connection lost, not closed).
 */
export async function dropConnection(server: TestServer, watched: WatchedClient, how: 'operator' | 'network' = 'operator'): Promise<void> {
  const connections = watched.sessions.length;
  if (how === 'network') {
    watched.sockets.at(-1)!.terminate();
  } else {
    const answer = await call(httpBase(server.httpPort), 'DELETE', `/v1/connections/${encodeURIComponent(watched.client.session!)}`);
    if (answer.status !== 200) throw new Error(`DELETE /v1/connections answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }
  await until('the client to connect again', () => watched.sessions.length > connections && watched.client.state === 'connected');
}

export async function createTopic(server: TestServer, name: string, partitions: number, config: Record<string, unknown> = {}): Promise<void> {
  const answer = await call(httpBase(server.httpPort), 'POST', '/v1/topics', { name, partitions, config });
  if (answer.status !== 201) throw new Error(`POST /v1/topics answered ${answer.status}: ${JSON.stringify(answer.body)}`);
}

/** The group's committed offsets in the topic, summed over its partitions (GET /v1/groups/<group>/lag). */
export async function committedTotal(server: TestServer, group: string, topic: string): Promise<number> {
  const answer = await call(httpBase(server.httpPort), 'GET', `/v1/groups/${encodeURIComponent(group)}/lag`);
  if (answer.status === 404) return 0;
  const rows = answer.body.partitions as Array<{ topic: string; offset: number }>;
  return rows.filter((row) => row.topic === topic).reduce((sum, row) => sum + row.offset, 0);
}
