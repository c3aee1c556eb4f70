import type { RillError } from '../errors/index.js';
import { describeResource, type AccessNeed, type Operation, type Resource } from './access-control.js';
import type { Principal } from './principal.js';
import type { Security } from './security.js';

/** Operations that change what others see (a topic's or group's existence, settings or offsets): each done is one audit line. */
const ADMINISTRATIVE: ReadonlySet<Operation> = new Set(['create', 'delete', 'alter', 'reset']);

/** Decisions one connection remembers at most: a client naming ever new topics does not grow it without end. */
const MAX_REMEMBERED = 1024;

/**
 * What one connection (or one HTTP request) may do, as its principal: each decision is made once
 * per operation and resource and remembered, so a producer's SENDs cost a map lookup, not a rule
 * scan, and a refusal is logged once, not once per message. A reload of the rules forgets them all.
 */
export class PrincipalRights {
  private readonly decisions = new Map<string, RillError | null>();
  private generation: number;
  private forgotten = 0;

  constructor(
    private readonly security: Security,
    private current: Principal,
    private readonly remote: string,
    /** The reload the principal was authenticated under: an older one is brought up to date at the first decision. */
    authenticatedUnder: number = security.generation,
  ) {
    this.generation = authenticatedUnder;
  }

  get principal(): Principal {
    return this.current;
  }

  /** A token refreshed: the same user, a later expiry, perhaps other roles. */
  replace(principal: Principal): void {
    this.current = principal;
    this.forget();
  }

  /**
   * Changes whenever the decisions made so far may no longer hold (a reload, a fresh token): what
   * a caller remembers of them beside this cache holds only while it is unchanged.
   */
  get version(): number {
    this.refresh();
    return this.forgotten;
  }

  private forget(): void {
    this.decisions.clear();
    this.forgotten++;
  }

  /** Throws `forbidden` when the principal may not. */
  require(operation: Operation, resource: Resource): void {
    const refusal = this.decide(operation, resource);
    if (refusal !== null) throw refusal;
  }

  /** The refusal, or null when the principal may. */
  decide(operation: Operation, resource: Resource): RillError | null {
    this.refresh();
    const key = resource.type === 'cluster' ? `${operation} cluster` : `${operation} ${resource.type} ${resource.name}`;
    let decision = this.decisions.get(key);
    if (decision === undefined) {
      decision = this.security.refusal(this.current, operation, resource, this.remote);
      if (this.decisions.size >= MAX_REMEMBERED) this.decisions.clear();
      this.decisions.set(key, decision);
    }
    return decision;
  }

  /** A request that needed `needs` succeeded: an administrative one is one audit line. */
  audit(needs: readonly AccessNeed[]): void {
    const done = needs.filter((need) => ADMINISTRATIVE.has(need.operation)).map((need) => `${need.operation} ${describeResource(need.resource)}`);
    if (done.length > 0) this.security.audit.info({ principal: this.current.name, remote: this.remote, operations: done }, 'administrative operation');
  }

  /** Whether the principal may, for filtering lists (no log). */
  may(operation: Operation, resource: Resource): boolean {
    this.refresh();
    return this.security.allows(this.current, operation, resource);
  }

  private refresh(): void {
    if (this.generation === this.security.generation) return;
    this.generation = this.security.generation;
    this.forget();
    const roles = this.security.currentRoles(this.current);
    if (roles !== this.current.roles) this.current = { ...this.current, roles };
  }
}
