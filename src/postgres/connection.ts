import postgres from 'postgres';

export type Sql = postgres.Sql;

/** Offsets and timestamps are int8: read as numbers (offsets stay far below 2^53). */
const int8AsNumber = { to: 20, from: [20], serialize: (value: number) => String(value), parse: (value: string) => Number(value) };

/**
 * A pool of connections to the cluster's database. postgres (porsager) rather than pg: it takes
 * libpq's multi-host URLs with `target_session_attrs` (fail-over to the new primary without a
 * proxy) and pipelines queries on a connection, where pg does neither.
 */
export function connect(url: string, maxConnections: number, nodeId: string): Sql {
  return postgres(url, {
    max: maxConnections,
    onnotice: () => {},
    types: { bigint: int8AsNumber },
    connection: { application_name: `rill:${nodeId}` },
    // A dead primary must fail a query in seconds, not after the kernel's TCP timeout.
    connect_timeout: 5,
    idle_timeout: 0,
  });
}

/** Whether an error is the database refusing for lack of disk (class 53: insufficient resources). */
export function isDiskFull(error: unknown): boolean {
  return (error as { code?: string }).code === '53100';
}

/**
 * Whether the outcome of a statement that failed with this error is unknown: the connection was
 * lost (the primary died, the network failed) before an answer came, so it may have committed.
 */
export function isConnectionLost(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  if (code === undefined) return true;
  // Postgres.js's own codes for a broken or closed connection; 57P01-57P03: the server shut down; 08: connection exceptions.
  return (
    code.startsWith('CONNECT') ||
    code === 'CONNECTION_CLOSED' ||
    code === 'CONNECTION_ENDED' ||
    code === 'CONNECTION_DESTROYED' ||
    code.startsWith('57P') ||
    code.startsWith('08')
  );
}
