import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/security/index.js';
import { makeTestCa, type TestCa } from '../helpers/certificates.js';
import { canonical, connectStompJs, publishWithReceipt, RawStompClient } from '../helpers/clients.js';
import { storedMessages, useServers, type TestServer } from '../helpers/server.js';

/*
 * TLS listeners: HTTPS and WSS on one port, STOMP over TLS on another, certificates from files,
 * TLS 1.2 at least, client certificates naming the user; the plain listeners switched off.
 * Certificates come from a throwaway CA made for the test.
 */

describe('TLS', () => {
  const servers = useServers();
  let ca: TestCa;
  let otherCa: TestCa;
  let passwordHash: string;
  // The CAs outlive each test (useTempDirs empties its directories after every test).
  const caDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-ca-'));
  afterAll(() => fs.rmSync(caDir, { recursive: true, force: true }));

  beforeAll(async () => {
    ca = makeTestCa(fs.mkdtempSync(path.join(caDir, 'a-')));
    otherCa = makeTestCa(fs.mkdtempSync(path.join(caDir, 'b-')));
    passwordHash = await hashPassword('tls-password');
  }, 60_000);

  const start = (clientCertificates: 'none' | 'request' | 'require', minVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.2') =>
    servers.start({
      server: { plainHttp: false, plainStomp: false },
      tls: { certFile: ca.server.certFile, keyFile: ca.server.keyFile, caFile: ca.certFile, httpsPort: 0, stompPort: 0, clientCertificates, minVersion },
      auth: {
        users: [{ name: 'web', passwordHash, roles: ['writer'] }],
        acls: [
          { principal: 'role:writer', resource: 'topic:secure.*', operations: ['all'] },
          { principal: 'user:svc-client', resource: 'topic:secure.*', operations: ['produce', 'create'] },
        ],
      },
    });

  it('serves stompjs over wss and a STOMP client over TLS, with the plain listeners off', async () => {
    const server = await start('request');
    expect(server.httpPort).toBe(0);
    expect(server.stompPort).toBe(0);
    expect(server.httpsPort).toBeGreaterThan(0);

    const web = await connectStompJs(`wss://127.0.0.1:${server.httpsPort}/stomp`, { login: 'web', passcode: 'tls-password' }, { webSocket: { ca: ca.cert } });
    await publishWithReceipt(web, '/producer/publish/secure.orders', canonical('w-1', 'k', 'over wss'));
    await web.deactivate();

    const raw = await RawStompClient.connectTls(server.stompTlsPort!, { ca: ca.cert });
    raw.send('CONNECT', { 'accept-version': '1.2', host: 'rill', login: 'web', passcode: 'tls-password' });
    await raw.next('CONNECTED');
    raw.send('SEND', { destination: '/producer/publish/secure.orders', receipt: 'r' }, canonical('t-1', 'k', 'over tls'));
    await raw.receipt('r');
    raw.close();
    expect(await storedMessages(server, 'secure.orders')).toBe(2);

    const https = await fetch(`https://127.0.0.1:${server.httpsPort}/health`).catch((error: Error) => error);
    // fetch does not trust the test CA: the point is that the port speaks TLS, checked by the handshake below.
    expect(https).toBeInstanceOf(Error);
    const secureHttp = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ port: server.httpsPort!, host: '127.0.0.1', ca: ca.cert }, () =>
        socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      );
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk.toString()));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    expect(secureHttp).toMatch(/^HTTP\/1\.1 200/);
  });

  it('takes the principal from a verified client certificate, and refuses a client with neither certificate nor credentials', async () => {
    const server = await start('request');
    const client = ca.client('svc-client');
    const withCertificate = await RawStompClient.connectTls(server.stompTlsPort!, { ca: ca.cert, cert: client.cert, key: client.key });
    withCertificate.send('CONNECT', { 'accept-version': '1.2', host: 'rill' });
    await withCertificate.next('CONNECTED');
    withCertificate.send('SEND', { destination: '/producer/publish/secure.certs', receipt: 'r' }, canonical('c-1', 'k', 'x'));
    await withCertificate.receipt('r');
    // The certificate's user has no rights beyond its rule.
    withCertificate.send('SEND', { destination: '/producer/publish/elsewhere', receipt: 'no' }, canonical('c-2', 'k', 'x'));
    expect((await withCertificate.next('ERROR')).headers.message).toContain('user "svc-client" may not produce topic "elsewhere"');

    // A certificate from another CA names nobody; without credentials the CONNECT is refused.
    const stranger = otherCa.client('svc-client');
    const foreign = await RawStompClient.connectTls(server.stompTlsPort!, { ca: ca.cert, cert: stranger.cert, key: stranger.key });
    foreign.send('CONNECT', { 'accept-version': '1.2', host: 'rill' });
    expect((await foreign.next('ERROR')).headers.code).toBe('unauthenticated');
    expect(await storedMessages(server, 'secure.certs')).toBe(1);
    expect(server.broker.topics.get('elsewhere')).toBeUndefined();
  });

  it('refuses, in the handshake, a client without a valid certificate when they are required, and TLS below 1.2', async () => {
    const server = await start('require');
    const handshake = (options: tls.ConnectionOptions) =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({ port: server.stompTlsPort!, host: '127.0.0.1', ca: ca.cert, ...options }, () => {
          // TLS 1.3 reports a refused client certificate after the handshake, as the first read fails.
          socket.write('CONNECT\naccept-version:1.2\nhost:rill\n\n\0');
        });
        socket.on('data', (chunk) => {
          resolve(chunk.toString().startsWith('CONNECTED') ? 'connected' : 'answered');
          socket.destroy();
        });
        socket.on('error', () => resolve('refused'));
        socket.on('close', () => resolve('refused'));
      });
    const client = ca.client('svc-client');
    expect(await handshake({ cert: client.cert, key: client.key })).toBe('connected');
    expect(await handshake({})).toBe('refused');
    const stranger = otherCa.client('svc-client');
    expect(await handshake({ cert: stranger.cert, key: stranger.key })).toBe('refused');
  });

  it('keeps to tls.minVersion', async () => {
    const tls12 = await start('none');
    const tls13 = await start('none', 'TLSv1.3');
    const version = (server: TestServer) =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({ port: server.stompTlsPort!, host: '127.0.0.1', ca: ca.cert, maxVersion: 'TLSv1.2' }, () => {
          resolve(socket.getProtocol() ?? 'none');
          socket.destroy();
        });
        socket.on('error', () => resolve('refused'));
      });
    expect(await version(tls12)).toBe('TLSv1.2');
    expect(await version(tls13)).toBe('refused');
  });

  it('reads the certificate files again on reload: new connections get the new certificate', async () => {
    const server = await start('none');
    const trusts = (caCert: string) =>
      new Promise<boolean>((resolve) => {
        const socket = tls.connect({ port: server.stompTlsPort!, host: '127.0.0.1', ca: caCert }, () => {
          resolve(true);
          socket.destroy();
        });
        socket.on('error', () => resolve(false));
      });
    expect(await trusts(ca.cert)).toBe(true);
    const config = server.config;
    server.reload({ auth: config.auth, tls: { ...config.tls!, certFile: otherCa.server.certFile, keyFile: otherCa.server.keyFile } });
    expect(await trusts(otherCa.cert)).toBe(true);
    expect(await trusts(ca.cert)).toBe(false);
    // A file that cannot be read changes nothing.
    expect(() => server.reload({ auth: config.auth, tls: { ...config.tls!, certFile: '/nonexistent.crt' } })).toThrow(/tls.certFile/);
    expect(await trusts(otherCa.cert)).toBe(true);
  });

  it('names the key at fault when a certificate file cannot be read', async () => {
    await expect(servers.start({ tls: { certFile: '/nonexistent/server.crt', keyFile: ca.server.keyFile, httpsPort: 0, stompPort: 0 } })).rejects.toThrow(
      /cannot read \/nonexistent\/server.crt \(ENOENT\): set tls.certFile/,
    );
  });
});
