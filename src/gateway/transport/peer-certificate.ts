import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/**
 * The common name of the client certificate a TLS connection presented, when the listener's CA
 * verified it (tls.clientCertificates); null on plain connections, without a certificate, or
 * with one that did not verify.
 */
export function verifiedCertificateSubject(socket: Socket): string | null {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const commonName: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof commonName === 'string' && commonName.length > 0 ? commonName : null;
}
