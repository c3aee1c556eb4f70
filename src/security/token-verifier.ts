import fs from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { AuthConfig } from '../config/index.js';
import type { Principal } from './principal.js';

type TokenConfig = NonNullable<AuthConfig['tokens']>;

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/** Why a token was refused: said to the client (never more than this), and logged. */
export class TokenRefused extends Error {}

/**
 * Checks JSON Web Tokens with jose: the signature (an HMAC secret, or the public keys of a JWKS
 * file or URL), `exp` and `nbf`, and `iss` and `aud` when configured; then maps the claims to a
 * principal (`userClaim`, `rolesClaim`).
 */
export class TokenVerifier {
  private readonly key: Uint8Array | JWTVerifyGetKey;
  private readonly algorithms: string[];
  /** Tokens verified lately, until they expire: an HTTP client sending its Bearer token on every request costs one verification. */
  private readonly verified = new LRUCache<string, Principal>({ max: 10_000 });

  constructor(
    private readonly config: TokenConfig,
    /** Stamped on the principals it verifies: which settings verified them. */
    readonly keys: number,
  ) {
    if (config.secret !== undefined) {
      this.key = new TextEncoder().encode(config.secret);
      this.algorithms = HMAC_ALGORITHMS;
    } else if (config.jwksFile !== undefined) {
      this.key = createLocalJWKSet(JSON.parse(fs.readFileSync(config.jwksFile, 'utf8')) as Parameters<typeof createLocalJWKSet>[0]);
      this.algorithms = PUBLIC_KEY_ALGORITHMS;
    } else {
      this.key = createRemoteJWKSet(new URL(config.jwksUrl!));
      this.algorithms = PUBLIC_KEY_ALGORITHMS;
    }
  }

  /** The principal of a token verified lately that has not expired, else null. */
  remembered(token: string): Principal | null {
    const principal = this.verified.get(token);
    if (principal === undefined) return null;
    if (principal.expiresAt! <= Date.now()) {
      this.verified.delete(token);
      return null;
    }
    return principal;
  }

  /** Throws TokenRefused saying why. */
  async verify(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      const options = {
        algorithms: this.algorithms,
        issuer: this.config.issuer,
        audience: this.config.audience,
        clockTolerance: this.config.clockToleranceSeconds,
      };
      // jose's two overloads (a key, a key resolver) take the same options.
      payload = this.key instanceof Uint8Array ? (await jwtVerify(token, this.key, options)).payload : (await jwtVerify(token, this.key, options)).payload;
    } catch (error) {
      throw new TokenRefused(describeFailure(error));
    }
    const name = payload[this.config.userClaim];
    if (typeof name !== 'string' || name.length === 0) throw new TokenRefused(`token has no "${this.config.userClaim}" claim naming the user`);
    if (payload.exp === undefined) throw new TokenRefused('token has no expiry ("exp" claim)');
    const principal: Principal = {
      name,
      roles: rolesOf(payload[this.config.rolesClaim]),
      anonymous: false,
      via: 'token',
      expiresAt: payload.exp * 1000,
      tokenKeys: this.keys,
    };
    this.verified.set(token, principal);
    return principal;
  }
}

function rolesOf(claim: unknown): ReadonlySet<string> {
  if (Array.isArray(claim)) return new Set(claim.filter((role): role is string => typeof role === 'string'));
  if (typeof claim === 'string') return new Set(claim.split(/\s+/).filter(Boolean));
  return new Set();
}

function describeFailure(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'token expired';
  if (error instanceof errors.JWTClaimValidationFailed) return `token claim "${error.claim}" is not accepted (${error.reason})`;
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) return 'token signature is not valid';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not accepted';
  return 'token is not valid';
}

/** Whether a passcode is shaped as a JWT (three base64url parts): it is then checked as one. */
export function looksLikeToken(passcode: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(passcode);
}
