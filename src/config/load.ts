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
}

/** Checks a configuration object, filling in defaults; throws ConfigError naming every problem. */
export function parseConfig(input: unknown, source = 'configuration'): RillConfig {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(`${source} is not valid:\n${z.prettifyError(result.error)}`);
  }
  const config = result.data;
  const names = new Set<string>();
  for (const topic of config.topics.definitions) {
    if (names.has(topic.name)) throw new ConfigError(`${source}: topic "${topic.name}" is defined twice`);
    names.add(topic.name);
  }
  return { ...config, brokers: { workers: config.brokers.workers ?? defaultWorkerCount() } };
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
  return parseConfig(applyOverrides(raw, overrides), `config file ${configFile}`);
}

function applyOverrides(raw: RillConfigInput, overrides: ConfigOverrides): unknown {
  const merged = structuredClone(raw ?? {}) as Record<string, Record<string, unknown>>;
  const section = (name: string): Record<string, unknown> => (merged[name] ??= {});
  if (overrides.dataDir !== undefined) section('storage').dataDir = overrides.dataDir;
  if (overrides.httpPort !== undefined) section('server').httpPort = overrides.httpPort;
  if (overrides.stompPort !== undefined) section('server').stompPort = overrides.stompPort;
  if (overrides.host !== undefined) section('server').host = overrides.host;
  if (overrides.workers !== undefined) section('brokers').workers = overrides.workers;
  if (overrides.logLevel !== undefined) section('log').level = overrides.logLevel;
  return merged;
}

/** Resolves the data directory against the working directory. */
export function resolveDataDir(config: RillConfig): string {
  return path.resolve(config.storage.dataDir);
}
