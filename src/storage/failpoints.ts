import { isMainThread } from 'node:worker_threads';

/**
 * Failpoints: faults that tests inject into storage, to check what the broker does when the disk
 * misbehaves. They are set with one environment variable, read once when this module is loaded
 * (broker worker threads inherit the environment of the process, so each reads the same value):
 *
 *   RILL_FAILPOINTS=<name>=<action>[,<name>=<action>...]
 *
 * e.g. `RILL_FAILPOINTS=fsync=error`. Whitespace around names and actions is ignored; an entry
 * whose name is unknown is ignored (so a newer test can run against an older broker), an entry
 * without `=` or with an unknown action for a known name is a mistake and throws at load.
 *
 * Failpoints:
 * - `fsync`: every fdatasync of a broker worker's journal (the group commit under the `fsync`
 *   durability mode, the periodic sync under `interval`) and of a partition log segment (a
 *   checkpoint, a flush on shutdown). Not the syncs that repair after a failure (erasing journal
 *   records, cutting a log back). Actions: `error`: the call fails with an I/O error (EIO)
 *   without syncing; `every-<n>`: every n-th call fails so (the others sync), to fail one file
 *   of several; `exit-at-<n>`: a broker worker thread's n-th call ends the thread instead
 *   (process.exit in a worker thread), after its batches were written and before they are
 *   durable or answered, in every life of every worker (the main thread is never ended so);
 *   `off`: no fault.
 * - `write`: every write of a batch to a partition log segment, as a full disk does it. Actions:
 *   `enospc`: the write fails with ENOSPC and writes nothing; `short`: half of the batch is
 *   written, then the write fails with ENOSPC; `off`: no fault.
 *
 * - `transaction`: the steps of a transaction's COMMIT (src/transactions). Actions:
 *   `kill-after-log`: the process kills itself (SIGKILL) once the transaction's record is durable
 *   in its log, before any partition has its messages; `kill-after-first-partition`: once the
 *   first partition has them; `off`: no fault.
 *
 * Unset (the normal case), the cost is one check of a constant boolean at each failpoint.
 */

export type FailpointName = 'fsync' | 'write' | 'transaction';
type Action = 'error' | 'enospc' | 'short' | 'off' | 'kill-after-log' | 'kill-after-first-partition' | `every-${number}` | `exit-at-${number}`;

const KNOWN: Record<FailpointName, readonly string[]> = {
  fsync: ['error', 'every-<n>', 'exit-at-<n>', 'off'],
  write: ['enospc', 'short', 'off'],
  transaction: ['kill-after-log', 'kill-after-first-partition', 'off'],
};

/** Whether `action` is one `name` takes (`every-<n>`: n a whole number from 1). */
function takes(name: FailpointName, action: string): boolean {
  if (name === 'fsync' && /^(every|exit-at)-[1-9]\d*$/.test(action)) return true;
  return KNOWN[name].includes(action) && !action.endsWith('-<n>');
}

function parse(text: string | undefined): ReadonlyMap<FailpointName, Action> | null {
  if (text === undefined || text.trim() === '') return null;
  const parsed = new Map<FailpointName, Action>();
  for (const entry of text.split(',')) {
    if (entry.trim() === '') continue;
    const equals = entry.indexOf('=');
    if (equals === -1) throw new Error(`RILL_FAILPOINTS: "${entry}" is not <name>=<action>`);
    const name = entry.slice(0, equals).trim();
    const action = entry.slice(equals + 1).trim();
    if (!Object.hasOwn(KNOWN, name)) continue;
    const actions = KNOWN[name as FailpointName];
    if (!takes(name as FailpointName, action)) {
      throw new Error(`RILL_FAILPOINTS: failpoint ${name} takes ${actions.join(' or ')}, not "${action}"`);
    }
    parsed.set(name as FailpointName, action as Action);
  }
  return parsed.size === 0 ? null : parsed;
}

const failpoints = parse(process.env.RILL_FAILPOINTS);

/** Whether any failpoint is set: test this first, so that an unset environment costs one check. */
export const failpointsActive: boolean = failpoints !== null;

/**
 * The error the failpoint `name` injects at `syscall`, or null when it injects nothing. Call it
 * only when `failpointsActive`.
 */
let fsyncCalls = 0;

export function failpointError(name: FailpointName, syscall: string): NodeJS.ErrnoException | null {
  const action = failpoints?.get(name);
  if (action === undefined || action === 'off') return null;
  if (action.startsWith('exit-at-')) {
    if (++fsyncCalls === Number(action.slice('exit-at-'.length)) && !isMainThread) process.exit(1);
    return null;
  }
  if (action.startsWith('every-')) {
    fsyncCalls++;
    if (fsyncCalls % Number(action.slice('every-'.length)) !== 0) return null;
  } else if (action !== 'error') return null;
  return Object.assign(new Error(`EIO: i/o error, ${syscall} (injected by RILL_FAILPOINTS ${name}=error)`), {
    code: 'EIO',
    errno: -5,
    syscall,
  });
}

/** The `write` failpoint's action, or null when it injects nothing. Call it only when `failpointsActive`. */
export function writeFailpoint(): 'enospc' | 'short' | null {
  const action = failpoints?.get('write');
  return action === 'enospc' || action === 'short' ? action : null;
}

/** The error a full disk gives a write. */
export function noSpaceError(syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall} (injected by RILL_FAILPOINTS write)`), { code: 'ENOSPC', errno: -28, syscall });
}

/** The `transaction` failpoint: kills the process (SIGKILL) at `step` if it is the one set. Call it only when `failpointsActive`. */
export function transactionFailpoint(step: 'kill-after-log' | 'kill-after-first-partition'): void {
  if (failpoints?.get('transaction') === step) process.kill(process.pid, 'SIGKILL');
}
