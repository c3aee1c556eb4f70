import net from 'node:net';

/**
 * Which web pages may use the broker (`server.allowedOrigins`): a browser says in `Origin` which
 * page opened a WebSocket or made a request. Allowed: no Origin (clients that are not browsers),
 * a page the broker served itself when it is reached by address (`http://127.0.0.1:8080`) or as
 * `localhost`, and the listed origins (`*`: all). A page of the broker's own host reached by a DNS
 * name is allowed only when listed: otherwise a page of any domain whose name an attacker points
 * at the broker's address (DNS rebinding) would count as the broker's own.
 */
export class OriginPolicy {
  private readonly origins: ReadonlySet<string>;
  private readonly any: boolean;

  constructor(allowed: readonly string[]) {
    this.any = allowed.includes('*');
    this.origins = new Set(allowed.filter((origin) => origin !== '*').map((origin) => new URL(origin).origin));
  }

  /** `host`: the request's Host header. */
  allows(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return true;
    if (this.any) return true;
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      return false; // "null" (a sandboxed page, a file) and anything unreadable
    }
    if (host !== undefined && parsed.host === host.toLowerCase() && isAddressOrLocalhost(parsed.hostname)) return true;
    return this.origins.has(parsed.origin);
  }
}

function isAddressOrLocalhost(hostname: string): boolean {
  return hostname === 'localhost' || net.isIP(hostname.replace(/^\[|\]$/g, '')) !== 0;
}
