import fs from 'node:fs';
import type { AuthConfig } from '../config/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { AccessControl, describeResource, type Operation, type Resource } from './access-control.js';
import { LoginThrottle } from './login-throttle.js';
import { Quotas } from './quotas.js';
import { SecuritySettingError } from './security-setting-error.js';
import { anonymousPrincipal, type Principal } from './principal.js';
import { looksLikeToken, TokenRefused, TokenVerifier } from './token-verifier.js';
import { UserDirectory } from './user-directory.js';

/** What a client offers to prove who it is. */
export interface Credentials {
  readonly login?: string | undefined;
  readonly passcode?: string | undefined;
  /** The remote address and port (`host:port`), for the failed-login throttle (by host) and the audit log. */
  readonly remote: string;
  /** The common name of the verified TLS client certificate, if the connection presented one. */
  readonly certificate?: string | null;
}

/** The one answer to every failed login: no client learns whether the user or the password was wrong. */
const BAD_CREDENTIALS = 'bad credentials';

/**
 * Who may connect and what each principal may do: the users and tokens of `auth`, its ACLs, and
 * the failed-login throttle, behind one face the front doors use. Authentication is on when users
 * or tokens are configured; off, everyone connects as `anonymous` and may do everything but touch
 * internal topics. Every failure and refusal is one line in the audit log (`component: audit`).
 *
 * `reload` swaps users, tokens and rules at once (SIGHUP); `generation` counts reloads, so that
 * what connections cached of their rights can tell it is out of date.
 */
export class Security {
  private users!: UserDirectory;
  private tokens!: TokenVerifier | undefined;
  private access!: AccessControl;
  private throttle!: LoginThrottle;
  private allowAnonymous!: boolean;
  /** The token settings (and the JWKS file's contents) the verifier was built from: unchanged, it is kept, with its cache and its connections. */
  private tokenSettings = '';
  private tokenKeys = 0;
  private readonly reloadListeners = new Set<() => void>();
  readonly audit: Logger;
  /** Per-principal limits: connections, subscriptions, publish rates. */
  readonly quotas: Quotas;
  /** Counts reloads: rights cached under an older generation are checked again. */
  generation = 0;

  constructor(
    config: AuthConfig,
    logger: Logger,
    /** TLS listeners ask for client certificates (tls.clientCertificates): they identify clients too, so authentication is on. */
    private readonly clientCertificates = false,
  ) {
    this.audit = logger.child({ component: 'audit' });
    this.quotas = new Quotas(config.quotas, logger.child({ component: 'quotas' }));
    this.configure(config);
  }

  /** Clients must prove who they are. */
  get enabled(): boolean {
    return this.users.size > 0 || this.tokens !== undefined || this.clientCertificates;
  }

  /** Replaces users, tokens and rules; connections check what they hold against the new ones at once. */
  reload(config: AuthConfig): void {
    this.configure(config);
    this.quotas.reload(config.quotas);
    this.generation++;
    for (const listener of this.reloadListeners) listener();
  }

  onReload(listener: () => void): () => void {
    this.reloadListeners.add(listener);
    return () => this.reloadListeners.delete(listener);
  }

  /** Everything is built before anything is replaced: a reload that fails leaves the old settings whole. */
  private configure(config: AuthConfig): void {
    const users = new UserDirectory(config.users);
    let tokens = this.tokens;
    let settings: string;
    try {
      settings = JSON.stringify(config.tokens ?? null) + (config.tokens?.jwksFile === undefined ? '' : fs.readFileSync(config.tokens.jwksFile, 'utf8'));
      if (settings !== this.tokenSettings) tokens = config.tokens === undefined ? undefined : new TokenVerifier(config.tokens, this.tokenKeys + 1);
    } catch (error) {
      throw new SecuritySettingError(`cannot read the token keys: ${(error as Error).message}`, 'auth.tokens');
    }
    if (settings !== this.tokenSettings) this.tokenKeys++;
    this.tokenSettings = settings;
    this.users = users;
    this.tokens = tokens;
    this.allowAnonymous = config.allowAnonymous;
    this.throttle = new LoginThrottle(config.failedLoginsPerMinute);
    this.access = new AccessControl(config.acls, !this.enabled);
  }

  /**
   * The principal for a STOMP CONNECT's login and passcode (a passcode shaped as a JWT is checked
   * as a token; its login, if any, is ignored). Synchronous when nothing needs checking. Throws
   * (or rejects with) `unauthenticated` or `rate-limited`.
   */
  authenticate(credentials: Credentials): Principal | Promise<Principal> {
    const { login, passcode, remote, certificate } = credentials;
    const given = (login !== undefined && login !== '') || (passcode !== undefined && passcode !== '');
    if (!this.enabled) return anonymousPrincipal();
    // A verified client certificate names the user, unless the client logs in as someone explicitly.
    if (!given && certificate !== undefined && certificate !== null) {
      return { name: certificate, roles: this.users.roles(certificate) ?? new Set(), anonymous: false, via: 'certificate', expiresAt: null };
    }
    if (!given) {
      if (this.allowAnonymous) return anonymousPrincipal();
      this.audit.warn({ remote, reason: 'no credentials' }, 'authentication failed');
      throw new RillError('unauthenticated', 'authentication required: send login and passcode (or a token as the passcode)');
    }
    return this.prove(login ?? '', passcode ?? '', remote);
  }

  /** The principal for an HTTP request's `Authorization` header (Basic or Bearer; none: anonymous, where allowed). */
  authenticateHttp(authorization: string | undefined, remote: string, certificate: string | null = null): Principal | Promise<Principal> {
    if (authorization === undefined || !this.enabled) return this.authenticate({ remote, certificate });
    const [scheme, value = ''] = authorization.trim().split(/\s+/, 2);
    if (scheme?.toLowerCase() === 'bearer') return this.authenticate({ passcode: value, remote });
    if (scheme?.toLowerCase() === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return this.authenticate({ login: decoded.slice(0, colon), passcode: decoded.slice(colon + 1), remote });
    }
    this.audit.warn({ remote, reason: 'unreadable Authorization header' }, 'authentication failed');
    throw new RillError('unauthenticated', 'the Authorization header must be "Basic <base64 user:password>" or "Bearer <token>"');
  }

  /** A connection that logged in with a token sends a fresh one before the old expires: it must name the same user. */
  async refreshToken(principal: Principal, token: string, remote: string): Promise<Principal> {
    if (this.tokens === undefined || !looksLikeToken(token)) throw new RillError('invalid-request', 'the body must be a JSON Web Token');
    const fresh = await this.prove('', token, remote);
    if (fresh.name !== principal.name) {
      this.audit.warn({ remote, principal: principal.name, tokenUser: fresh.name }, 'token refresh for another user refused');
      throw new RillError('forbidden', `a fresh token must name the connection's user "${principal.name}"`);
    }
    return fresh;
  }

  /**
   * Credentials checked lately are known without hashing or verifying again, and take nothing from
   * the throttle (a service sending its token on every request, many clients behind one address).
   */
  private prove(login: string, passcode: string, remote: string): Principal | Promise<Principal> {
    const token = this.tokens !== undefined && looksLikeToken(passcode);
    const remembered = token ? this.tokens!.remembered(passcode) : login !== '' ? this.users.remembered(login, passcode) : null;
    return remembered ?? this.check(login, passcode, remote);
  }

  private async check(login: string, passcode: string, remote: string): Promise<Principal> {
    const host = hostOf(remote);
    this.throttle.attempt(host);
    let principal: Principal | null = null;
    let reason = 'wrong user or password';
    if (this.tokens !== undefined && looksLikeToken(passcode)) {
      try {
        principal = await this.tokens.verify(passcode);
      } catch (error) {
        if (!(error instanceof TokenRefused)) throw error;
        reason = error.message;
      }
    } else if (login !== '') principal = await this.users.verify(login, passcode);
    else reason = 'no login';
    if (principal !== null) {
      this.throttle.succeeded(host);
      return principal;
    }
    const exhausted = this.throttle.exhausted(host);
    this.audit.warn({ remote, login: login || undefined, reason, throttled: exhausted || undefined }, 'authentication failed');
    // A token's own problem (expired, wrong audience) is the client's to fix, and reveals no secret.
    throw new RillError('unauthenticated', reason.startsWith('token') ? reason : BAD_CREDENTIALS);
  }

  /** Whether the principal may; no log. */
  allows(principal: Principal, operation: Operation, resource: Resource): boolean {
    return this.access.allows(principal, operation, resource);
  }

  /** The refusal for an operation the principal may not do, logged; null when it may. */
  refusal(principal: Principal, operation: Operation, resource: Resource, remote: string): RillError | null {
    if (this.access.allows(principal, operation, resource)) return null;
    this.audit.warn({ principal: principal.name, remote, operation, resource: describeResource(resource) }, 'access denied');
    return new RillError(
      'forbidden',
      `${principal.anonymous ? 'anonymous clients' : `user "${principal.name}"`} may not ${operation} ${describeResource(resource)}`,
    );
  }

  /** Whether a principal may still be connected after a reload (a password user removed, token keys replaced: their connections end). */
  stillValid(principal: Principal): boolean {
    // A password changed meanwhile ends connections made with the old one (a leaked password, replaced).
    if (principal.via === 'password') return principal.credential !== undefined && this.users.credentialOf(principal.name) === principal.credential;
    if (principal.via === 'anonymous') return !this.enabled || this.allowAnonymous;
    // Tokens verified with a secret or keys since replaced (a rotation after a leak) are no longer trusted.
    if (principal.via === 'token') return this.tokens !== undefined && principal.tokenKeys === this.tokens.keys;
    return true;
  }

  /** A password or certificate user's roles as now configured (a reload may change them). */
  currentRoles(principal: Principal): ReadonlySet<string> {
    if (principal.via === 'password') return this.users.roles(principal.name) ?? principal.roles;
    if (principal.via === 'certificate') return this.users.roles(principal.name) ?? new Set();
    return principal.roles;
  }
}

/** The host of a `host:port` address (an IPv6 host keeps its colons). */
function hostOf(remote: string): string {
  const colon = remote.lastIndexOf(':');
  return colon > 0 ? remote.slice(0, colon) : remote;
}
