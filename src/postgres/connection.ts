import fs from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import postgres from 'postgres';

export type Sql = postgres.Sql;

/** Offsets and timestamps are int8: read as numbers (offsets stay far below 2^53). */
const int8AsNumber = { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) };

/**
 * Run-time settings of every session: the server's TCP keepalives, and how long it waits for its
 * unacknowledged data to be (keepalives do not probe then), so that it notices within about 25 s a
 * client gone without a word (see connect).
 */
const SERVER_KEEPALIVES = { tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3, tcp_user_timeout: 25_000 };

/** The open sockets of each pool `connect` made (see cutConnections). */
const poolSockets = new WeakMap<Sql, Set<net.Socket>>();

/**
 * A pool of connections to the cluster's database. postgres (porsager) rather than pg: it takes
 * libpq's multi-host URLs with `target_session_attrs` (fail-over to the new primary without a
 * proxy) and pipelines queries on a connection, where pg does neither.
 */
export function connect(
  url: string,
  maxConnections: number,
  nodeId: string,
  more: {
    max_lifetime?: number | null;
    backoff?: (attempt: number) => number;
    onclose?: (connectionId: number) => void;
    /** Run-time settings sent with the connection, besides application_name. */
    connection?: Record<string, number>;
  } = {},
): Sql {
  const sockets = new Set<net.Socket>();
  const options = {
    // postgres.js waits up to 20 s between attempts after a few failures: a new primary would wait
    // that long to be found. Also the pause between rounds of the hosts while there is no primary
    // (patches/postgres+3.4.9.patch: unpatched, a waiting query has them tried in a tight loop).
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 1),
    ...more,
    ...writableSession(url),
    max: maxConnections,
    onnotice: () => {},
    types: { bigint: int8AsNumber },
    // The server's keepalives end within about 25 s a session whose client is gone without a word
    // (a partition, or a connection cut by cutConnections whose reset was lost): what it holds (row
    // locks, a statement waiting for the rest of it) goes with it.
    connection: { ...SERVER_KEEPALIVES, ...more.connection, application_name: `rill:${nodeId}` },
    // A dead primary must fail a query in seconds, not after the kernel's TCP timeout.
    connect_timeout: 5,
    idle_timeout: 0,
    // Rill's patch of postgres.js hands over each socket it opens (patches/postgres+3.4.9.patch).
    // Those that closed are let go as new ones come: under TLS, postgres.js takes every listener
    // off the socket it wraps, a 'close' listener of Rill's among them.
    onsocket: (socket: net.Socket) => {
      for (const open of sockets) if (open.destroyed) sockets.delete(open);
      sockets.add(socket);
    },
  };
  const sql = postgres(url, options);
  poolSockets.set(sql, sockets);
  return sql;
}

/**
 * Ends every connection of a pool at once, with a reset: their statements fail as connections
 * lost (isConnectionLost: their outcome unknown), and the pool connects anew for the next ones.
 * For a database that stopped answering without closing them (its host dead, a network
 * partition): TCP waits many minutes before it gives up on a connection with data unacknowledged,
 * and a new primary would wait as long. A reset, not a close: a close would leave what the socket
 * had not delivered for the kernel to send on, and a partition that heals could carry a statement
 * given up on to the server long after (see the probe in PostgresLogStore). Under TLS the socket
 * reset is the one TLS runs over, which ends the TLS one too. Returns how many were ended.
 */
export function cutConnections(sql: Sql): number {
  const sockets = poolSockets.get(sql);
  if (sockets === undefined) return 0;
  let cut = 0;
  for (const socket of sockets) {
    sockets.delete(socket);
    if (socket.destroyed) continue;
    try {
      socket.resetAndDestroy();
    } catch {
      // A Unix socket (a `host=/path` URL) has no reset; nothing lies between it and the server.
      socket.destroy();
    }
    cut++;
  }
  return cut;
}

/**
 * With several hosts, only a primary will do. postgres.js checks `read-write` by
 * default_transaction_read_only, which a hot standby leaves off (it would connect to a standby and
 * fail every write), so read-write, or no setting, is asked as `primary` (not in recovery), which
 * is what libpq's read-write means for a standby.
 */
function writableSession(url: string): { target_session_attrs?: 'primary' } {
  const hosts = url.slice(url.indexOf('://') + 3).split(/[/?]/)[0] ?? '';
  const asked = /[?&]target_session_attrs=([^&]*)/.exec(url)?.[1];
  if (!hosts.includes(',') && asked === undefined) return {};
  return asked === undefined || asked === 'read-write' ? { target_session_attrs: 'primary' } : {};
}

/**
 * Whether the database refused a write for a reason that passes, having written nothing: it is not
 * (or no longer) a primary (25006), or it rolled the statement back to break a deadlock or a
 * serialization conflict (40P01, 40001). A retry may succeed.
 */
export function isTransient(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === '25006' || code === '40P01' || code === '40001';
}

/** Whether an error is the database refusing for lack of disk (class 53: insufficient resources). */
export function isDiskFull(error: unknown): boolean {
  return (error as { code?: string }).code === '53100';
}

/**
 * Whether the outcome of a statement that failed with this error is unknown: the connection was
 * lost (the primary died, the network failed, the server shut down) before an answer came, so it
 * may have committed. Anything but an error the server answered with (a socket's ECONNRESET, the
 * client's CONNECTION_CLOSED) is that; so are the server's connection failures (class 08) and
 * shutdowns (57P), which can end a commit waiting for the synchronous standby after it committed locally.
 */
export function isConnectionLost(error: unknown): boolean {
  if (!(error instanceof postgres.PostgresError)) return true;
  return error.code.startsWith('08') || error.code.startsWith('57P');
}

/** A statement the database did not answer in time (it still runs; its answer will be dropped). */
export class StatementTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StatementTimeoutError';
  }
}

/**
 * What `query` answers, or a StatementTimeoutError after `ms`: postgres.js waits without end for a
 * connection (while there is no primary it keeps looking for one), and statement_timeout does not
 * count that wait. Only for statements that change nothing: the one given up on is not cancelled
 * (postgres.js drops the outcome of its cancel request, and a failed one would be an unhandled
 * rejection), so it runs once the database answers, and its answer is dropped.
 */
export function within<T>(query: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StatementTimeoutError(`the database did not answer ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([query, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Whether the installed postgres.js carries Rill's patch (patches/postgres+3.4.9.patch, applied by
 * `npm install`): without it, a connection waiting for a primary tries the hosts in a tight loop,
 * a connection the server stopped answering cannot be cut, batches go both ways as hex text twice
 * their size, and a connection lost mid-statement can leave the next one stuck (its start-up never
 * sent) or on a standby (target_session_attrs skipped), or stop the node with an uncaught error. An
 * install with `--ignore-scripts` skips it.
 */
export function postgresPatched(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve('postgres');
    const source = fs.readFileSync(path.join(path.dirname(entry), 'connection.js'), 'utf8');
    return [
      '++attempts % options.host.length',
      'options.onsocket(x)',
      'return b.i32(x.length).bytes(x)',
      'x.parser === builtinTypes.bytea.parse',
      'nextWriteTimer = chunk = null',
      'return fetchArrayTypes().catch(',
      "return (queryError(q, Errors.connection('CONNECTION_CLOSED', options)), true)",
    ].every((change) => source.includes(change));
  } catch {
    return false;
  }
}
