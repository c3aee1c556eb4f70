import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, parseConfig } from '../../../src/config/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

describe('configuration', () => {
  const tempDir = useTempDirs();

  it('fills in documented defaults', () => {
    const config = parseConfig({});
    expect(config.server).toMatchObject({ httpPort: 8080, stompPort: 61613, websocketPaths: ['/stomp', '/producer'] });
    expect(config.stomp.maxFrameBytes).toBe(1024 * 1024);
    expect(config.storage.durability.mode).toBe('fsync');
    expect(config.topics).toMatchObject({ autoCreate: true, defaultPartitions: 4 });
    expect(config.brokers.workers).toBeGreaterThanOrEqual(1);
  });

  it('loads the shipped default file', () => {
    const config = loadConfig(undefined);
    expect(fs.existsSync(DEFAULT_CONFIG_FILE)).toBe(true);
    expect(config.storage.dataDir).toBe('./data');
  });

  it('names every invalid setting by its path', () => {
    const error = (() => {
      try {
        parseConfig(
          { server: { httpPort: 70000 }, storage: { durability: { mode: 'sometimes' } }, topics: { definitions: [{ name: 'bad name', partitions: 0 }] } },
          'rill.json',
        );
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected an error');
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(/^rill.json is not valid/);
    expect(error.message).toContain('server.httpPort');
    expect(error.message).toContain('storage.durability.mode');
    expect(error.message).toContain('topics.definitions[0].name');
    expect(error.message).toContain('topics.definitions[0].partitions');
  });

  it("refuses a node id longer than PostgreSQL keeps of its connections' names (rill:<nodeId> in 63 bytes)", () => {
    expect(parseConfig({ storage: { nodeId: 'n'.repeat(58) } }).storage.nodeId).toHaveLength(58);
    expect(() => parseConfig({ storage: { nodeId: 'n'.repeat(59) } }, 'rill.json')).toThrow(/1-58 letters[\s\S]*storage\.nodeId/);
  });

  it('refuses unknown keys and duplicate topics', () => {
    expect(() => parseConfig({ server: { htpPort: 1 } })).toThrow(/htpPort/);
    expect(() =>
      parseConfig({
        topics: {
          definitions: [
            { name: 'a', partitions: 1 },
            { name: 'a', partitions: 2 },
          ],
        },
      }),
    ).toThrow(/topic "a" is defined twice/);
  });

  it('reports unreadable files and invalid JSON with the file name', () => {
    const dir = tempDir();
    expect(() => loadConfig(path.join(dir, 'missing.json'))).toThrow(/cannot read config file .*missing.json/);
    const broken = path.join(dir, 'broken.json');
    fs.writeFileSync(broken, '{ "server": ');
    expect(() => loadConfig(broken)).toThrow(/broken.json is not valid JSON/);
  });

  it('lets command-line flags override the file', () => {
    const dir = tempDir();
    const file = path.join(dir, 'rill.json');
    fs.writeFileSync(file, JSON.stringify({ server: { httpPort: 1111 }, storage: { dataDir: '/from/file' } }));
    const config = loadConfig(file, { httpPort: 0, stompPort: 16613, dataDir: '/from/flag', workers: 3, logLevel: 'warn' });
    expect(config.server.httpPort).toBe(0);
    expect(config.server.stompPort).toBe(16613);
    expect(config.storage.dataDir).toBe('/from/flag');
    expect(config.brokers.workers).toBe(3);
    expect(config.log.level).toBe('warn');
  });

  it('listens on the loopback only when no users are configured, and refuses another interface without them', () => {
    expect(parseConfig({}).server.host).toBe('127.0.0.1');
    expect(loadConfig(undefined).server.host).toBe('127.0.0.1');
    const users = [{ name: 'u', passwordHash: 'scrypt$32768$8$3$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }];
    expect(parseConfig({ auth: { users } }).server.host).toBe('0.0.0.0');
    expect(parseConfig({ auth: { allowAnonymous: true } }).server.host).toBe('0.0.0.0');
    expect(parseConfig({ server: { host: '::1' } }).server.host).toBe('::1');
    expect(() => parseConfig({ server: { host: '0.0.0.0' } }, 'rill.json')).toThrow(
      /server.host "0.0.0.0" in rill.json lets other machines connect, but no users are configured.*auth.users.*auth.allowAnonymous/,
    );
    // A flag is blamed as the flag.
    const file = path.join(tempDir(), 'rill.json');
    fs.writeFileSync(file, '{}');
    expect(() => loadConfig(file, { host: '0.0.0.0' })).toThrow(/^--host "0.0.0.0" lets other machines connect/);
  });

  it('checks ACL rules and token settings', () => {
    expect(() => parseConfig({ auth: { acls: [{ principal: 'bob', resource: 'topic:x', operations: ['produce'] }] } })).toThrow(/a principal is "user:<name>"/);
    expect(() => parseConfig({ auth: { acls: [{ principal: '*', resource: 'queue:x', operations: ['produce'] }] } })).toThrow(
      /a resource is "topic:<pattern>"/,
    );
    expect(() => parseConfig({ auth: { acls: [{ principal: '*', resource: 'cluster', operations: ['fly'] }] } })).toThrow(/operations/);
    expect(() => parseConfig({ auth: { tokens: { secret: 'x'.repeat(32), jwksUrl: 'http://127.0.0.1/jwks' } } })).toThrow(
      /exactly one of secret, jwksFile, jwksUrl/,
    );
  });
});
