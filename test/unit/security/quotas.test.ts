import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/logging/index.js';
import type { Principal } from '../../../src/security/index.js';
import { PrincipalQuota, Quotas } from '../../../src/security/quotas.js';

const user = (name: string, ...roles: string[]): Principal => ({ name, roles: new Set(roles), anonymous: false, via: 'password', expiresAt: null });
const quotasOf = (input: unknown) => parseConfig({ auth: { quotas: input } }).auth.quotas;
const silent = createLogger('silent');

describe('PrincipalQuota', () => {
  it('lets a second of burst through, then tells how long to stop reading until the byte rate is met', () => {
    let now = 0;
    const limits = { ...quotasOf({ publishBytesPerSecond: 1000 }) };
    const quota = new PrincipalQuota(
      'u',
      () => limits,
      silent,
      () => {},
      () => now,
    );
    expect(quota.charge(1000, 10)).toBe(0);
    // 500 bytes over the bucket: half a second.
    expect(quota.charge(500, 1)).toBe(500);
    now += 500;
    expect(quota.charge(0, 0)).toBe(0);
    // Refilled at the rate, never above one second's worth.
    now += 10_000;
    expect(quota.charge(1000, 0)).toBe(0);
    expect(quota.charge(1, 0)).toBe(1);
  });

  it('caps a pause at a minute however deep the debt', () => {
    const quota = new PrincipalQuota(
      'u',
      () => ({ ...quotasOf({ publishMessagesPerSecond: 1 }) }),
      silent,
      () => {},
      () => 0,
    );
    expect(quota.charge(0, 1_000_000)).toBe(60_000);
  });
});

describe('Quotas', () => {
  it('forgets a principal refused its first connection, so that raising the limit lets it in', () => {
    const quotas = new Quotas(quotasOf({ connections: 0 }), silent);
    expect(() => quotas.of(user('u')).openConnection()).toThrow(/has 0 connections open/);
    quotas.reload(quotasOf({ connections: 1 }));
    quotas.of(user('u')).openConnection();
    expect(() => quotas.of(user('u')).openConnection()).toThrow(/has 1 connections open/);
  });

  it('applies a reload to principals with connections open, and a role override over the defaults', () => {
    const quotas = new Quotas(quotasOf({ connections: 1, principals: [{ principal: 'role:ops', connections: 3 }] }), silent);
    const held = quotas.of(user('u'));
    held.openConnection();
    expect(() => held.openConnection()).toThrow(/quota/);
    quotas.reload(quotasOf({ connections: 2, principals: [{ principal: 'role:ops', connections: 3 }] }));
    held.openConnection();
    const ops = quotas.of(user('o', 'ops'));
    for (let i = 0; i < 3; i++) ops.openConnection();
    expect(() => ops.openConnection()).toThrow(/has 3 connections open/);
  });
});
