import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema, defaultWorkerCount, type RillConfig, type RillConfigInput } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The configuration shipped with the package: what `npm start` runs with. */
export const DEFAULT_CONFIG_FILE = fileURLToPath(new URL('../../config/default.json', import.meta.url));

export interface ConfigOverrides {
  dataDir?: string;
  httpPort?: number;
  stompPort?: number;
  host?: string;
  workers?: number;
  logLevel?: string;
  storageBackend?: 'embedded' | 'postgres';
  postgresUrl?: string;
  nodeId?: string;
}

/** The command-line flag behind each override and the setting it replaces: a bad value is blamed on the flag, not the file. */
const OVERRIDE_FLAGS: { [K in keyof Required<ConfigOverrides>]: { flag: string; path: readonly string[] } } = {
  dataDir: { flag: '--data-dir', path: ['storage', 'dataDir'] },
  httpPort: { flag: '--http-port', path: ['server', 'httpPort'] },
  stompPort: { flag: '--stomp-port', path: ['server', 'stompPort'] },
  host: { flag: '--host', path: ['server', 'host'] },
  workers: { flag: '--workers', path: ['brokers', 'workers'] },
  logLevel: { flag: '--log-level', path: ['log', 'level'] },
  storageBackend: { flag: '--storage', path: ['storage', 'backend'] },
  postgresUrl: { flag: '--postgres-url', path: ['storage', 'postgres', 'url'] },
  nodeId: { flag: '--node-id', path: ['storage', 'nodeId'] },
};

/** Checks a configuration object, filling in defaults; throws ConfigError naming every problem. */
export function parseConfig(input: unknown, source = 'configuration'): RillConfig {
  return checkConfig(input, source, new Map());
}

/** parseConfig, where `flags` maps a setting ("server.httpPort") to the flag that set it ("--http-port 70000"). */
function checkConfig(input: unknown, source: string, flags: Map<string, string>): RillConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const problems: string[] = [];
    const fromSource = result.error.issues.filter((issue) => {
      const flag = flags.get(issue.path.join('.'));
      if (flag !== undefined) problems.push(`${flag} is not valid: ${issue.message}`);
      return flag === undefined;
    });
    if (fromSource.length > 0) problems.push(`${source} is not valid:\n${z.prettifyError(new z.ZodError(fromSource))}`);
    throw new ConfigError(problems.join('\n'));
  }
  const config = result.data;
  const names = new Set<string>();
  for (const topic of config.topics.definitions) {
    if (names.has(topic.name)) throw new ConfigError(`${source}: topic "${topic.name}" is defined twice`);
    names.add(topic.name);
  }
  const { auth } = config;
  // Client certificates identify clients as users and tokens do.
  const authenticated = auth.users.length > 0 || auth.tokens !== undefined || (config.tls?.clientCertificates ?? 'none') !== 'none';
  const host = config.server.host ?? (authenticated || auth.allowAnonymous ? '0.0.0.0' : '127.0.0.1');
  if (!authenticated && !auth.allowAnonymous && !isLoopback(host)) {
    const blame = flags.get('server.host') ?? `server.host "${host}" in ${source}`;
    throw new ConfigError(
      `${blame} lets other machines connect, but no users are configured, so anyone could: ` +
        'configure auth.users (or auth.tokens), or set auth.allowAnonymous to true to let anyone in',
    );
  }
  if ((!config.server.plainHttp || !config.server.plainStomp) && config.tls === undefined) {
    throw new ConfigError(`${source}: a plain listener is off (server.plainHttp, server.plainStomp) but tls is not configured to replace it`);
  }
  return { ...config, server: { ...config.server, host }, brokers: { ...config.brokers, workers: config.brokers.workers ?? defaultWorkerCount() } };
}

/** An address only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Reads a JSON config file (the shipped default when none is named) and applies overrides. */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}): RillConfig {
  const configFile = file ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = fs.readFileSync(configFile, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${configFile}: ${(error as Error).message}`);
  }
  let raw: RillConfigInput;
  try {
    raw = JSON.parse(text) as RillConfigInput;
  } catch (error) {
    throw new ConfigError(`config file ${configFile} is not valid JSON: ${(error as Error).message}`);
  }
  const flags = new Map<string, string>();
  const merged = applyOverrides(raw, overrides, flags);
  return checkConfig(merged, `config file ${configFile}`, flags);
}

/** The file's settings with the overrides on top; `flags` learns which setting each flag set. */
function applyOverrides(raw: RillConfigInput, overrides: ConfigOverrides, flags: Map<string, string>): unknown {
  const merged = structuredClone(raw ?? {}) as Record<string, unknown>;
  if (typeof merged !== 'object' || Array.isArray(merged)) return merged; // the schema says what is wrong with the file
  for (const [name, value] of Object.entries(overrides) as Array<[keyof ConfigOverrides, unknown]>) {
    const target = OVERRIDE_FLAGS[name];
    if (value === undefined || target === undefined) continue;
    let section: unknown = merged;
    for (const name of target.path.slice(0, -1)) {
      const parent = section as Record<string, unknown>;
      section = parent[name] ??= {};
      if (typeof section !== 'object' || section === null || Array.isArray(section)) break; // a bad section is the file's problem
    }
    if (typeof section !== 'object' || section === null || Array.isArray(section)) continue;
    (section as Record<string, unknown>)[target.path.at(-1)!] = value;
    // postgres URLs carry passwords: the flag is named, its value left out
    const shown = name === 'postgresUrl' ? '' : ` ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`;
    flags.set(target.path.join('.'), `${target.flag}${shown}`);
  }
  return merged;
}

/** Resolves the data directory against the working directory. */
export function resolveDataDir(config: RillConfig): string {
  return path.resolve(config.storage.dataDir);
}
