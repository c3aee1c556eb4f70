import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import forge from 'node-forge';

export interface Issued {
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}

export interface TestCa extends Issued {
  /** A certificate for the broker: 127.0.0.1 and localhost. */
  server: Issued;
  /** A client certificate whose subject's common name is `commonName`. */
  client(commonName: string): Issued;
}

/**
 * A throwaway certificate authority in `dir`, with a server certificate for 127.0.0.1: keys from
 * node:crypto (fast), certificates signed with node-forge.
 */
export function makeTestCa(dir: string): TestCa {
  const ca = issue(dir, 'ca', 'Rill Test CA', null, { ca: true });
  const server = issue(dir, 'server', '127.0.0.1', ca, { altNames: true });
  let serial = 10;
  return { ...ca, server, client: (commonName) => issue(dir, `client-${serial++}`, commonName, ca, {}) };
}

function issue(dir: string, name: string, commonName: string, issuer: Issued | null, options: { ca?: boolean; altNames?: boolean }): Issued {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = `0${Math.floor(Math.random() * 1e12).toString(16)}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  const signer = issuer === null ? null : forge.pki.certificateFromPem(issuer.cert);
  cert.setIssuer(signer === null ? cert.subject.attributes : signer.subject.attributes);
  const extensions: object[] = [{ name: 'basicConstraints', cA: options.ca === true }];
  if (options.ca === true) extensions.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true });
  else extensions.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true }, { name: 'extKeyUsage', serverAuth: true, clientAuth: true });
  if (options.altNames === true)
    extensions.push({
      name: 'subjectAltName',
      altNames: [
        { type: 7, ip: '127.0.0.1' },
        { type: 2, value: 'localhost' },
      ],
    });
  cert.setExtensions(extensions);
  cert.sign(forge.pki.privateKeyFromPem(issuer === null ? keyPem : issuer.key), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  fs.writeFileSync(certFile, certPem);
  fs.writeFileSync(keyFile, keyPem, { mode: 0o600 });
  return { cert: certPem, key: keyPem, certFile, keyFile };
}
