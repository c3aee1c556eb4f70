import type { AclOperation, AclRule } from '../config/index.js';
import type { Principal } from './principal.js';

/** What an operation acts on. */
export type Resource = { readonly type: 'topic' | 'group'; readonly name: string } | { readonly type: 'cluster' };
export type Operation = Exclude<AclOperation, 'all'>;

/** One operation on one resource: what a subscription or request needs. */
export interface AccessNeed {
  readonly operation: Operation;
  readonly resource: Resource;
}

export const CLUSTER: Resource = { type: 'cluster' };
export const topicResource = (name: string): Resource => ({ type: 'topic', name });
export const groupResource = (name: string): Resource => ({ type: 'group', name });

export function describeResource(resource: Resource): string {
  return resource.type === 'cluster' ? 'the cluster' : `${resource.type} "${resource.name}"`;
}

interface CompiledRule {
  allow: boolean;
  principal: { kind: 'everyone' } | { kind: 'user' | 'role'; name: string };
  resource: { type: 'cluster' } | { type: 'topic' | 'group'; pattern: RegExp };
  operations: ReadonlySet<AclOperation>;
}

/**
 * The ACL rules of `auth.acls`, Kafka's way: a rule names a principal (a user, a role, everyone),
 * a resource pattern and operations; a matching deny wins over any allow, and with authentication
 * on, what no rule allows is denied. Internal topics (`__*`) are beyond every rule: no client
 * reads or writes them, and describing one takes `describe` on the cluster (an administrator's).
 */
export class AccessControl {
  private readonly rules: CompiledRule[];

  constructor(
    rules: readonly AclRule[],
    /** Authentication is off: every principal may do everything (but touch internal topics). */
    private readonly open: boolean,
  ) {
    this.rules = rules.map(compile);
  }

  allows(principal: Principal, operation: Operation, resource: Resource): boolean {
    if (resource.type === 'topic' && resource.name.startsWith('__')) {
      return operation === 'describe' && this.allows(principal, 'describe', { type: 'cluster' });
    }
    if (this.open) return true;
    let allowed = false;
    for (const rule of this.rules) {
      if (!rule.operations.has(operation) && !rule.operations.has('all')) continue;
      if (!matchesPrincipal(rule, principal) || !matchesResource(rule, resource)) continue;
      if (!rule.allow) return false;
      allowed = true;
    }
    return allowed;
  }
}

function compile(rule: AclRule): CompiledRule {
  const principal: CompiledRule['principal'] =
    rule.principal === '*'
      ? { kind: 'everyone' }
      : { kind: rule.principal.startsWith('user:') ? 'user' : 'role', name: rule.principal.slice(rule.principal.indexOf(':') + 1) };
  const colon = rule.resource.indexOf(':');
  const resource: CompiledRule['resource'] =
    rule.resource === 'cluster'
      ? { type: 'cluster' }
      : { type: rule.resource.slice(0, colon) as 'topic' | 'group', pattern: globPattern(rule.resource.slice(colon + 1)) };
  return { allow: rule.effect === 'allow', principal, resource, operations: new Set(rule.operations) };
}

/** `orders.*` matches `orders.eu` and `orders.`; `*` matches every name; other characters match themselves. */
function globPattern(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
}

function matchesPrincipal(rule: CompiledRule, principal: Principal): boolean {
  const { principal: who } = rule;
  if (who.kind === 'everyone') return true;
  if (who.kind === 'user') return who.name === principal.name;
  return principal.roles.has(who.name);
}

function matchesResource(rule: CompiledRule, resource: Resource): boolean {
  if (rule.resource.type === 'cluster' || resource.type === 'cluster') return rule.resource.type === resource.type;
  return rule.resource.type === resource.type && rule.resource.pattern.test(resource.name);
}
