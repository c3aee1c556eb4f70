import net from 'node:net';
import postgres from 'postgres';

export type Sql = postgres.Sql;

/** The cluster's database as a node holds it: the pool, and a way to drop its connections at once. */
export interface Database {
  sql: Sql;
  /**
   * Destroys every connection's socket with `cause`: statements in flight fail with it (in doubt,
   * as for any lost connection), and the pool connects anew for the next ones. For a database
   * that stopped answering without closing its connections (its host died or was cut off), whose
   * sockets would otherwise wait for the kernel's TCP timeout, many minutes.
   */
  dropConnections(cause: Error): void;
}

/** Offsets and timestamps are int8: read as numbers (offsets stay far below 2^53). */
const int8AsNumber = { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) };

/**
 * A pool of connections to the cluster's database. postgres (porsager) rather than pg: it takes
 * libpq's multi-host URLs with `target_session_attrs` (fail-over to the new primary without a
 * proxy) and pipelines queries on a connection, where pg does neither.
 */
export function connect(url: string, maxConnections: number, nodeId: string): Database {
  const sockets = new Set<net.Socket>();
  const options = {
    ...writableSession(url),
    max: maxConnections,
    onnotice: () => {},
    types: { bigint: int8AsNumber },
    connection: { application_name: `rill:${nodeId}` },
    // A dead primary must fail a query in seconds, not after the kernel's TCP timeout.
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    idle_timeout: 0,
    // The sockets are this node's own, so that it can drop them (postgres.js lends none out).
    socket: socketsOf(sockets),
  };
  // Not in postgres.js's types, though its documentation has it: passed as a variable, not a literal.
  const sql = postgres(url, options);
  return {
    sql,
    dropConnections: (cause) => {
      for (const socket of [...sockets]) socket.destroy(cause);
    },
  };
}

const CONNECT_TIMEOUT_SECONDS = 5;

/** What postgres.js hands a `socket` function: the URL's hosts and ports (several for fail-over), or a Unix socket's path. */
interface SocketOptions {
  host: string[];
  port: number[];
  path?: string | false;
}

/**
 * postgres.js's `socket` option: a connected socket, kept in `sockets` while it lives. Given its
 * own socket, postgres.js no longer goes through the URL's hosts: this does, as postgres.js would,
 * each new connection trying the host after the one the last tried first (a connection that finds
 * a standby where `target_session_attrs` asks for a primary is closed and opened again, so the
 * next try goes to the next host).
 */
function socketsOf(sockets: Set<net.Socket>): (options: SocketOptions) => Promise<net.Socket> {
  let next = 0;
  return async (options) => {
    if (options.path) return track(sockets, await opened(net.connect(options.path)));
    let failure: unknown = new Error('no host to connect to');
    for (let tried = 0; tried < options.host.length; tried++) {
      const index = next;
      next = (next + 1) % options.host.length;
      try {
        return track(sockets, await opened(net.connect(options.port[index] ?? options.port[0] ?? 5432, options.host[index])));
      } catch (error) {
        failure = error;
      }
    }
    throw failure;
  };
}

/** Resolves once the socket is connected; rejects (and destroys it) on an error, or after the connect timeout. */
function opened(socket: net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => socket.destroy(new Error(`connect timeout after ${CONNECT_TIMEOUT_SECONDS} s`)), CONNECT_TIMEOUT_SECONDS * 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', reject);
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

function track(sockets: Set<net.Socket>, socket: net.Socket): net.Socket {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
  return socket;
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
