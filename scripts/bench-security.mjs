// The `security` section of `npm run bench`: publishing with authentication and ACLs on, and over
// TLS (wss), each beside the plain case of the same run.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { fmt, log, median, publishOnFreshServer, root, settle } from './bench-lib.mjs';

/** A self-signed certificate for 127.0.0.1, written to `dir`; the producers trust it as their CA. */
function selfSigned(dir) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }));
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const name = [{ name: 'commonName', value: '127.0.0.1' }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
  ]);
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' });
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  const certFile = path.join(dir, 'server.crt');
  const keyFile = path.join(dir, 'server.key');
  fs.writeFileSync(certFile, forge.pki.certificateToPem(cert));
  fs.writeFileSync(keyFile, keyPem, { mode: 0o600 });
  return { certFile, keyFile };
}

export async function securityCost({ quick }) {
  const scale = quick ? 0.3 : 1;
  // Runs of a few seconds each, and five of each: the figures of one run swing by 15 % on this machine.
  const rounds = quick ? 2 : 5;
  const c = { name: '4 producers x 100 B', producers: 4, count: 400_000, size: 100 };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rill-bench-tls-'));
  try {
    const { certFile, keyFile } = selfSigned(dir);
    const passwordHash = execFileSync(process.execPath, ['bin/rill.js', 'passwd'], { cwd: root, input: 'bench-password' }).toString().trim();
    const variants = {
      plain: {},
      auth: {
        config: {
          auth: {
            users: [{ name: 'bench', passwordHash, roles: ['producer'] }],
            acls: [{ principal: 'role:producer', resource: 'topic:*', operations: ['produce', 'create'] }],
          },
        },
        env: { RILL_BENCH_LOGIN: 'bench', RILL_BENCH_PASSCODE: 'bench-password' },
      },
      wss: { config: { tls: { certFile, keyFile, httpsPort: 0, stompPort: 0 } }, secure: true, env: { RILL_BENCH_CA: certFile } },
    };
    const rates = { plain: [], auth: [], wss: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? ['plain', 'auth', 'wss'] : ['wss', 'auth', 'plain'];
      for (const which of order) {
        const result = await publishOnFreshServer(c, scale, variants[which]);
        rates[which].push(result.rate);
        log(`  ${c.name}, ${which}: ${fmt(result.rate)} msgs/s`);
      }
    }
    await settle();
    const plain = median(rates.plain);
    const auth = median(rates.auth);
    const wss = median(rates.wss);
    return `## Security: what authentication and TLS cost

Publishing (${c.name}, a receipt every 100, 50 outstanding, fsync durability, a fresh server per
run, ${rounds} runs per setting in rotating order: the median, and every run beside it) with no
authentication (plain), with a user logged in by password and ACLs checked on every SEND (auth),
and over TLS (wss, TLS 1.3, a 2048-bit RSA certificate, no authentication). Target: authentication
and ACL checks cost under 5 % (they are made once per connection and destination, then cached);
TLS costs what Node's TLS costs.

| case | msgs/s | / plain | target | | runs |
|---|---:|---:|---:|---|---|
| plain | ${fmt(plain)} | 100 % | | | ${rates.plain.map(fmt).join(', ')} |
| auth | ${fmt(auth)} | ${((auth / plain) * 100).toFixed(0)} % | ≥ 95 % | ${auth >= 0.95 * plain ? 'met' : 'not met'} | ${rates.auth.map(fmt).join(', ')} |
| wss | ${fmt(wss)} | ${((wss / plain) * 100).toFixed(0)} % | (measured) | | ${rates.wss.map(fmt).join(', ')} |
`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
