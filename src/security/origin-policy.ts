/**
 * Which web pages may use the broker (`server.allowedOrigins`): a browser says in `Origin` which
 * page opened a WebSocket or made a request. Allowed: no Origin (clients that are not browsers),
 * a page served by the broker's own host, and the listed origins (`*`: all).
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
    if (host !== undefined && parsed.host === host.toLowerCase()) return true;
    return this.origins.has(parsed.origin);
  }
}
