import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type RillConfig } from '../config/index.js';

/**
 * The configuration a command that works on a broker's data directory names as `rill start`
 * does: the config file (`--config`), then `--data-dir` over it. A bad flag or config is one line
 * on stderr, and the exit code 2 is returned instead.
 */
export function configFromFlags(command: string, argv: string[], usage: string): RillConfig | number {
  let configFile: string | undefined;
  let dataDir: string | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, 'data-dir': { type: 'string' } }, strict: true });
    configFile = values.config;
    dataDir = values['data-dir'];
  } catch (error) {
    process.stderr.write(`rill ${command}: ${(error as Error).message}\n\n${usage}`);
    return 2;
  }
  try {
    return loadConfig(configFile, { dataDir });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`rill: ${error.message}\n`);
    return 2;
  }
}
