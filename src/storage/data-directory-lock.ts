import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';

/** The lock's name in the data directory, as Kafka names its own. */
const LOCK_FILE = '.lock';
/** How often, and how long apart, a start-up retries while another one is taking over a stale lock. */
const ATTEMPTS = 50;
const PAUSE_MS = 20;
/** A lock file without hard links is written in place: how often to read it again before it counts as unreadable. */
const UNREADABLE_ATTEMPTS = 5;
/** Guards of guards: each level needs a start-up killed inside a takeover, so a few levels are plenty. */
const MAX_GUARD_DEPTH = 3;

const holderSchema = z.object({
  pid: z.number().int().positive(),
  hostname: z.string(),
  startedAt: z.string(),
  token: z.string().min(1),
  bootId: z.string().optional(),
  processStart: z.number().optional(),
  httpPort: z.number().optional(),
  stompPort: z.number().optional(),
});

/** What a lock file says about the broker that holds it. */
export type LockHolder = z.infer<typeof holderSchema>;

/** Another broker (alive, or on another host so that nobody can tell) holds the data directory. */
export class DataDirectoryLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly lockFile: string,
    /** null: the lock file exists but is not one Rill can read. */
    readonly holder: LockHolder | null,
  ) {
    super(
      holder === null
        ? `data directory ${dataDir} is locked by ${lockFile}, which is not a lock file Rill can read`
        : `data directory ${dataDir} is in use by another broker: ${describeHolder(holder)}`,
    );
    this.name = 'DataDirectoryLockedError';
  }
}

/** The data directory cannot be created or written (not a directory, no permission, read-only, full). */
export class DataDirectoryAccessError extends Error {
  constructor(
    readonly dataDir: string,
    override readonly cause: Error,
  ) {
    super(`cannot write ${dataDir} (${cause.message})`);
    this.name = 'DataDirectoryAccessError';
  }
}

/** Tokens of the locks this process holds: a lock carrying our pid but none of these is from an earlier process that had our pid. */
const heldHere = new Set<string>();

/**
 * One data directory, one broker: an exclusive lock on `<dataDir>/.lock`, taken before anything
 * reads or recovers the directory and held until the broker has closed.
 *
 * Node has no flock, so the lock is a file that exists while it is held. It is created whole: the
 * holder's record ({pid, hostname, startedAt, token, ...}) is written and fsynced to a temporary
 * file that is then hard-linked to `.lock`, which fails if `.lock` exists; readers never see a
 * half-written lock. A lock whose holder is gone (same host, and its process no longer runs, or is
 * another process that reuses the pid, or the machine has restarted since) is stale and taken over.
 * The takeover is the one step with a race (two start-ups over the same stale lock): whoever
 * creates the guard `.lock.takeover-<stale token>` first (the same exclusive create, itself taken
 * over if its holder died) may remove the stale lock, and only if it still carries that token;
 * then everyone competes on the exclusive create again, which exactly one wins.
 */
export class DataDirectoryLock {
  private released = false;

  private constructor(
    readonly lockFile: string,
    private holder: LockHolder,
    /** The holder of the stale lock this one replaced, if any. */
    readonly tookOverFrom: LockHolder | null,
  ) {}

  /**
   * The broker that holds the data directory's lock and still runs on this machine; null when
   * none does (no lock, a stale one, or one from another host, which cannot be reached from here).
   */
  static runningHolder(dataDir: string): LockHolder | null {
    const holder = readHolder(path.join(path.resolve(dataDir), LOCK_FILE));
    if (holder === undefined || holder.hostname !== os.hostname() || isGone(holder)) return null;
    return holder;
  }

  /**
   * Creates the data directory if needed and locks it. Throws DataDirectoryLockedError when
   * another broker holds it, DataDirectoryAccessError when it cannot be written.
   */
  static acquire(dataDir: string, info: { httpPort?: number; stompPort?: number } = {}): DataDirectoryLock {
    const directory = path.resolve(dataDir);
    const lockFile = path.join(directory, LOCK_FILE);
    const record: LockHolder = {
      pid: process.pid,
      hostname: os.hostname(),
      startedAt: new Date().toISOString(),
      token: crypto.randomBytes(8).toString('hex'),
      ...optional('bootId', bootId()),
      ...optional('processStart', processStat(process.pid)?.start),
      ...info,
    };
    let outcome: Claim;
    try {
      fs.mkdirSync(directory, { recursive: true });
      outcome = claim(lockFile, record, 0);
    } catch (error) {
      if (error instanceof DataDirectoryLockedError) throw new DataDirectoryLockedError(directory, error.lockFile, error.holder);
      throw new DataDirectoryAccessError(directory, error as Error);
    }
    if (!outcome.held) throw new DataDirectoryLockedError(directory, lockFile, outcome.holder);
    heldHere.add(record.token);
    return new DataDirectoryLock(lockFile, record, outcome.replaced);
  }

  /** Adds what the holder learned after locking (its ports) to the lock file, for whoever is refused next. */
  update(info: { httpPort?: number; stompPort?: number }): void {
    if (this.released || readHolder(this.lockFile)?.token !== this.holder.token) return;
    this.holder = { ...this.holder, ...info };
    const temporary = `${this.lockFile}.${this.holder.token}.tmp`;
    writeSynced(temporary, this.holder, 'w');
    fs.renameSync(temporary, this.lockFile);
  }

  /** Removes the lock file, if it is still this lock's. */
  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.holder.token);
    removeIfHeld(this.lockFile, this.holder.token);
  }
}

/** "pid 123 on host a (started 2025-01-01T00:00:00.000Z, HTTP port 8080, STOMP port 61613)". */
function describeHolder(holder: LockHolder): string {
  const details = [`started ${holder.startedAt}`];
  if (holder.httpPort !== undefined) details.push(`HTTP port ${holder.httpPort}`);
  if (holder.stompPort !== undefined) details.push(`STOMP port ${holder.stompPort}`);
  return `pid ${holder.pid} on host ${holder.hostname} (${details.join(', ')})`;
}

type Claim = { held: true; replaced: LockHolder | null } | { held: false; holder: LockHolder };

/** Creates `file` holding `record`, taking it over from a holder that is gone; or names the live holder. */
function claim(file: string, record: LockHolder, depth: number): Claim {
  let replaced: LockHolder | null = null;
  let blocker: LockHolder | undefined;
  let unreadable = 0;
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (createExclusive(file, record)) return { held: true, replaced };
    let holder: LockHolder | undefined;
    try {
      holder = readHolder(file);
    } catch (error) {
      // Without hard links a lock is written in place, and may be read before its content is there.
      if (!(error instanceof DataDirectoryLockedError) || ++unreadable >= UNREADABLE_ATTEMPTS || attempt === ATTEMPTS) throw error;
      pause(PAUSE_MS);
      continue;
    }
    if (holder === undefined) continue; // released in between: try again
    if (!isGone(holder) || depth >= MAX_GUARD_DEPTH) return { held: false, holder };
    const guard = `${file}.takeover-${holder.token}`;
    const guarded = claim(guard, record, depth + 1);
    if (!guarded.held) {
      // Another start-up is taking this stale lock over right now; see who ends up with it.
      blocker = guarded.holder;
      pause(PAUSE_MS);
      continue;
    }
    try {
      if (readHolder(file)?.token === holder.token) {
        fs.unlinkSync(file);
        replaced = holder;
      }
    } finally {
      removeIfHeld(guard, record.token);
    }
  }
  // Still contended after every attempt: a takeover that does not finish (its process stopped?).
  return { held: false, holder: blocker ?? readHolder(file) ?? record };
}

/** Whether the holder certainly no longer runs. A holder on another host cannot be checked: it counts as running. */
function isGone(holder: LockHolder): boolean {
  if (holder.hostname !== os.hostname()) return false;
  const boot = bootId();
  if (holder.bootId !== undefined && boot !== undefined && holder.bootId !== boot) return true;
  if (holder.pid === process.pid) return !heldHere.has(holder.token);
  if (!processExists(holder.pid)) return true;
  const stat = processStat(holder.pid);
  if (stat === undefined) return false;
  if (stat.state === 'Z' || stat.state === 'X') return true;
  return holder.processStart !== undefined && stat.start !== holder.processStart;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Linux only: a process's state letter and its start time (clock ticks since boot), from /proc/<pid>/stat. */
function processStat(pid: number): { state: string; start: number } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so count from the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const start = Number(fields[19]);
  return fields[0] === undefined || !Number.isFinite(start) ? undefined : { state: fields[0], start };
}

let cachedBootId: string | null | undefined;

/** Linux only: changes at every boot, so a lock from before a restart of the machine is stale. */
function bootId(): string | undefined {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      cachedBootId = null;
    }
  }
  return cachedBootId ?? undefined;
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** Creates `file` with `record` as its whole content, unless it exists. */
function createExclusive(file: string, record: LockHolder): boolean {
  const temporary = `${file}.${record.token}.tmp`;
  writeSynced(temporary, record, 'wx');
  try {
    fs.linkSync(temporary, file);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    // A file system without hard links: create the lock in place (a reader may see it empty for a moment).
    try {
      writeSynced(file, record, 'wx');
      return true;
    } catch (inPlace) {
      if ((inPlace as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw inPlace;
    }
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

function writeSynced(file: string, record: LockHolder, flag: 'w' | 'wx'): void {
  const fd = fs.openSync(file, flag);
  try {
    fs.writeSync(fd, JSON.stringify(record) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The lock file's holder; undefined when there is no such file. Throws DataDirectoryLockedError (holder null) when it cannot be read as a lock. */
function readHolder(file: string): LockHolder | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed;
  try {
    parsed = holderSchema.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (parsed?.success !== true) throw new DataDirectoryLockedError(path.dirname(file), file, null);
  return parsed.data;
}

function removeIfHeld(file: string, token: string): void {
  try {
    if (readHolder(file)?.token === token) fs.unlinkSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof DataDirectoryLockedError)) throw error;
  }
}

/** Blocks this thread: start-up has nothing else to do while another start-up finishes its takeover. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
