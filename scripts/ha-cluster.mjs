#!/usr/bin/env node
// A local high-availability set on loopback, from Debian's packages: three etcd members, three
// PostgreSQL servers managed by Patroni in synchronous mode, and three Rill nodes on them (cluster
// mode), each "machine" i being etcd i + Patroni i (with its PostgreSQL) + Rill node i.
//
//   node scripts/ha-cluster.mjs up [--dir DIR]     starts it, prints its ports and pids as JSON, and
//                                                  stays in the foreground (Ctrl-C stops it all)
//
// Needs: apt-get install etcd-server patroni postgresql   (and npm run build for dist/)
// As root, PostgreSQL (under Patroni) runs as the `postgres` user, as Debian's package sets up.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const MACHINES = 3;
const INSTALL = 'apt-get install -y etcd-server patroni postgresql';

/** What is missing of the Debian packages the set needs, as the command that installs it (null: nothing). */
export function missingPackages() {
  const missing = [];
  if (!exists('etcd')) missing.push('etcd-server');
  if (!exists('patroni')) missing.push('patroni');
  if (postgresBinDir() === null) missing.push('postgresql');
  return missing.length === 0 ? null : `missing Debian packages (${missing.join(', ')}): run \`${INSTALL}\` as root`;
}

function exists(command) {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** The newest PostgreSQL server binaries Debian installed (/usr/lib/postgresql/<version>/bin). */
function postgresBinDir() {
  const base = '/usr/lib/postgresql';
  if (!fs.existsSync(base)) return null;
  const versions = fs
    .readdirSync(base)
    .filter((v) => fs.existsSync(path.join(base, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : path.join(base, versions[0], 'bin');
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function postgresUser() {
  if (os.userInfo().uid !== 0) return {};
  return { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
}

async function waitFor(what, check, timeoutMs = 60_000) {
  const started = Date.now();
  for (;;) {
    try {
      const result = await check();
      if (result) return result;
    } catch {}
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Each machine's role as its Patroni reports it (`leader`, `sync_standby`, `replica`, or null when it does not answer). */
export async function roles(set) {
  return Promise.all(
    set.machines.map(async (machine) => {
      try {
        const answer = await fetch(`http://127.0.0.1:${machine.patroniPort}/patroni`, { signal: AbortSignal.timeout(1000) });
        const body = await answer.json();
        return body.role === 'master' || body.role === 'primary' ? 'leader' : body.sync_standby ? 'sync_standby' : body.role;
      } catch {
        return null;
      }
    }),
  );
}

/**
 * Starts the set in `dir`; resolves once Patroni has a leader and a synchronous standby and every
 * Rill node is ready. Returns its ports, pids and a `stop()`.
 */
export async function up(dir, { log = () => {} } = {}) {
  const problem = missingPackages();
  if (problem !== null) throw new Error(problem);
  const binDir = postgresBinDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  const owner = postgresUser();
  // Patroni, as the postgres user, makes its data directories and sockets here.
  if (owner.uid !== undefined) fs.chownSync(dir, owner.uid, owner.gid);
  const machines = [];
  for (let i = 0; i < MACHINES; i++) {
    machines.push({
      index: i,
      etcdClientPort: await freePort(),
      etcdPeerPort: await freePort(),
      patroniPort: await freePort(),
      postgresPort: await freePort(),
      processes: {},
    });
  }
  const children = [];
  const spawnLogged = (name, command, args, options = {}) => {
    const out = fs.openSync(path.join(dir, `${name}.log`), 'a');
    const child = spawn(command, args, { stdio: ['ignore', out, out], detached: true, ...options });
    children.push(child);
    return child;
  };
  const cluster = machines.map((m) => `etcd${m.index}=http://127.0.0.1:${m.etcdPeerPort}`).join(',');
  for (const m of machines) {
    m.processes.etcd = spawnLogged(`etcd${m.index}`, 'etcd', [
      '--name',
      `etcd${m.index}`,
      '--data-dir',
      path.join(dir, `etcd${m.index}`),
      '--listen-client-urls',
      `http://127.0.0.1:${m.etcdClientPort}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${m.etcdClientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${m.etcdPeerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${m.etcdPeerPort}`,
      '--initial-cluster',
      cluster,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      `rill-${path.basename(dir)}`,
      // Patroni talks to etcd through its v2 API (the `etcd` section of its configuration), which etcd 3.4 serves when asked.
      '--enable-v2=true',
    ]);
  }
  log('etcd: three members started');
  const etcdHosts = machines.map((m) => `127.0.0.1:${m.etcdClientPort}`).join(',');
  for (const m of machines) {
    const dataDir = path.join(dir, `pg${m.index}`);
    const config = `scope: rill
name: pg${m.index}
restapi:
  listen: 127.0.0.1:${m.patroniPort}
  connect_address: 127.0.0.1:${m.patroniPort}
etcd:
  hosts: ${etcdHosts}
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    synchronous_mode: true
    postgresql:
      use_pg_rewind: false
      parameters:
        synchronous_commit: 'on'
        wal_level: replica
        max_wal_senders: 10
        max_connections: 200
  initdb:
    - encoding: UTF8
    - locale: C
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${m.postgresPort}
  connect_address: 127.0.0.1:${m.postgresPort}
  data_dir: ${dataDir}
  bin_dir: ${binDir}
  pgpass: ${path.join(dir, `pgpass${m.index}`)}
  authentication:
    superuser:
      username: postgres
      password: rill
    replication:
      username: replicator
      password: rill
  parameters:
    unix_socket_directories: '${dir}'
tags:
  nofailover: false
  noloadbalance: false
`;
    const file = path.join(dir, `patroni${m.index}.yml`);
    fs.writeFileSync(file, config);
    if (owner.uid !== undefined) fs.chownSync(file, owner.uid, owner.gid);
    m.processes.patroni = spawnLogged(`patroni${m.index}`, 'patroni', [file], { ...owner, env: { ...process.env, HOME: dir } });
  }
  log('patroni: three nodes started');
  await waitFor(
    'a Patroni leader and a synchronous standby',
    async () => {
      const now = await roles({ machines });
      return now.includes('leader') && now.includes('sync_standby');
    },
    120_000,
  );
  log('patroni: a leader and a synchronous standby');
  const url = `postgres://postgres:rill@${machines.map((m) => `127.0.0.1:${m.postgresPort}`).join(',')}/postgres?target_session_attrs=read-write`;
  for (const m of machines) {
    const rillDir = path.join(dir, `rill${m.index}`);
    fs.mkdirSync(rillDir, { recursive: true });
    const child = spawnLogged(
      `rill${m.index}`,
      process.execPath,
      [
        path.join(ROOT, 'bin', 'rill.js'),
        'start',
        '--storage',
        'postgres',
        '--postgres-url',
        url,
        '--node-id',
        `node${m.index}`,
        '--data-dir',
        rillDir,
        '--host',
        '127.0.0.1',
        '--http-port',
        String((m.httpPort = await freePort())),
        '--stomp-port',
        String((m.stompPort = await freePort())),
      ],
      { cwd: ROOT },
    );
    m.processes.rill = child;
    await waitFor(`Rill node ${m.index}`, async () => (await fetch(`http://127.0.0.1:${m.httpPort}/health`)).status === 200);
  }
  log('rill: three nodes ready');
  return {
    dir,
    url,
    machines,
    /** Kills a process of a machine with SIGKILL (and, for Patroni's PostgreSQL, finds it by its data directory). */
    kill(machine, part) {
      if (part === 'postgres') {
        const pid = Number(fs.readFileSync(path.join(dir, `pg${machine.index}`, 'postmaster.pid'), 'utf8').split('\n')[0]);
        process.kill(pid, 'SIGKILL');
        return;
      }
      const child = machine.processes[part];
      if (child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
    },
    async stop() {
      for (const child of children.reverse()) {
        if (child.exitCode !== null || child.signalCode !== null) continue;
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {}
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
      for (const child of children) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }
      // Patroni's PostgreSQL servers are its children's children: end whatever still runs in the set's directory.
      for (const m of machines) {
        try {
          const pid = Number(fs.readFileSync(path.join(dir, `pg${m.index}`, 'postmaster.pid'), 'utf8').split('\n')[0]);
          process.kill(pid, 'SIGKILL');
        } catch {}
      }
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { dir: { type: 'string' } } });
  if (positionals[0] !== 'up') {
    process.stderr.write('Usage: node scripts/ha-cluster.mjs up [--dir DIR]\n');
    process.exit(2);
  }
  const problem = missingPackages();
  if (problem !== null) {
    process.stderr.write(`ha-cluster: ${problem}\n`);
    process.exit(1);
  }
  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rill-ha-'));
  const set = await up(dir, { log: (line) => process.stderr.write(`ha-cluster: ${line}\n`) });
  const describe = set.machines.map(({ index, etcdClientPort, patroniPort, postgresPort, httpPort, stompPort }) => ({
    machine: index,
    etcdClientPort,
    patroniPort,
    postgresPort,
    rill: { httpPort, stompPort },
  }));
  process.stdout.write(`${JSON.stringify({ dir, url: set.url, machines: describe }, null, 2)}\n`);
  const shutdown = () => void set.stop().then(() => process.exit(0));
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}
