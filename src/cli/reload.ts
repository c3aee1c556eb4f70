import { resolveDataDir } from '../config/index.js';
import { DataDirectoryLock } from '../storage/index.js';
import { configFromFlags } from './config-flags.js';

const USAGE = `Usage: rill reload [--config FILE] [--data-dir DIR]
  Tells the broker running on this machine over the data directory (named as rill start names it)
  to read its users, tokens, ACLs and TLS certificate files again (SIGHUP), without dropping
  connections. The broker's log says whether the reload succeeded.
`;

/** `rill reload`: finds the broker by its data directory's lock and sends it SIGHUP. */
export function runReload(argv: string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = configFromFlags('reload', argv, USAGE);
  if (typeof config === 'number') return config;
  const dataDir = resolveDataDir(config);
  const holder = DataDirectoryLock.runningHolder(dataDir);
  if (holder === null) {
    process.stderr.write(`rill reload: no broker runs on ${dataDir} on this machine: pass --data-dir (or --config) to name its data directory\n`);
    return 1;
  }
  try {
    process.kill(holder.pid, 'SIGHUP');
  } catch (error) {
    process.stderr.write(`rill reload: cannot signal the broker (pid ${holder.pid}): ${(error as Error).message}\n`);
    return 1;
  }
  process.stdout.write(`rill reload: asked the broker on ${dataDir} (pid ${holder.pid}) to reload users, tokens, ACLs and certificates\n`);
  return 0;
}
