/** Who a connection or an HTTP request acts as. */
export interface Principal {
  readonly name: string;
  readonly roles: ReadonlySet<string>;
  /** Connected without credentials (auth.allowAnonymous, or no users configured at all). */
  readonly anonymous: boolean;
  /** How the principal proved who it is. */
  readonly via: 'password' | 'token' | 'certificate' | 'anonymous';
  /** When its token expires (ms since the epoch); null when nothing expires. */
  readonly expiresAt: number | null;
  /** A token's: which token settings (secret, keys) verified it; a reload that changes them ends its connections. */
  readonly tokenKeys?: number;
  /** A password user's: a digest of the hash its password was checked against; a reload that changes the password ends its connections. */
  readonly credential?: string;
}

const ANONYMOUS_NAME = 'anonymous';

export function anonymousPrincipal(): Principal {
  return { name: ANONYMOUS_NAME, roles: new Set(), anonymous: true, via: 'anonymous', expiresAt: null };
}
