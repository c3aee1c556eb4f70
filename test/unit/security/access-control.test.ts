import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { AccessControl, CLUSTER, groupResource, topicResource } from '../../../src/security/access-control.js';
import type { Principal } from '../../../src/security/principal.js';

const user = (name: string, ...roles: string[]): Principal => ({ name, roles: new Set(roles), anonymous: false, via: 'password', expiresAt: null });
const rules = (acls: unknown) => parseConfig({ auth: { acls } }).auth.acls;

describe('AccessControl', () => {
  const control = new AccessControl(
    rules([
      { principal: 'role:producer', resource: 'topic:orders.*', operations: ['produce'] },
      { principal: 'user:carol', resource: 'group:billing', operations: ['join', 'describe'] },
      { principal: '*', resource: 'topic:public', operations: ['consume'] },
      { effect: 'deny', principal: 'user:mallory', resource: 'topic:*', operations: ['all'] },
      { principal: 'role:admin', resource: 'cluster', operations: ['all'] },
      { principal: 'role:admin', resource: 'topic:*', operations: ['all'] },
    ]),
    false,
  );

  it('allows what a rule allows to a user, a role or everyone, and nothing else', () => {
    expect(control.allows(user('p', 'producer'), 'produce', topicResource('orders.eu'))).toBe(true);
    expect(control.allows(user('p', 'producer'), 'produce', topicResource('orders'))).toBe(false);
    expect(control.allows(user('p', 'producer'), 'consume', topicResource('orders.eu'))).toBe(false);
    expect(control.allows(user('carol'), 'join', groupResource('billing'))).toBe(true);
    expect(control.allows(user('carol'), 'reset', groupResource('billing'))).toBe(false);
    expect(control.allows(user('dave'), 'join', groupResource('billing'))).toBe(false);
    expect(control.allows(user('dave'), 'consume', topicResource('public'))).toBe(true);
    // A topic pattern never matches a group of the same name, nor the cluster.
    expect(control.allows(user('p', 'producer'), 'produce', groupResource('orders.eu'))).toBe(false);
    expect(control.allows(user('a', 'admin'), 'describe', CLUSTER)).toBe(true);
    expect(control.allows(user('p', 'producer'), 'describe', CLUSTER)).toBe(false);
  });

  it('lets a deny win over any allow', () => {
    expect(control.allows(user('mallory', 'producer', 'admin'), 'produce', topicResource('orders.eu'))).toBe(false);
    expect(control.allows(user('mallory'), 'consume', topicResource('public'))).toBe(false);
  });

  it('treats glob characters other than * literally', () => {
    const literal = new AccessControl(rules([{ principal: '*', resource: 'topic:a.b', operations: ['produce'] }]), false);
    expect(literal.allows(user('x'), 'produce', topicResource('a.b'))).toBe(true);
    expect(literal.allows(user('x'), 'produce', topicResource('aXb'))).toBe(false);
  });

  it('keeps internal topics from every client, whatever the rules, but lets a cluster describer describe them', () => {
    const admin = user('a', 'admin');
    expect(control.allows(admin, 'consume', topicResource('__consumer_offsets'))).toBe(false);
    expect(control.allows(admin, 'produce', topicResource('__transaction_state'))).toBe(false);
    expect(control.allows(admin, 'describe', topicResource('__consumer_offsets'))).toBe(true);
    expect(control.allows(user('p', 'producer'), 'describe', topicResource('__consumer_offsets'))).toBe(false);
    const open = new AccessControl([], true);
    expect(open.allows(user('anyone'), 'produce', topicResource('x'))).toBe(true);
    expect(open.allows(user('anyone'), 'consume', topicResource('__consumer_offsets'))).toBe(false);
  });
});
