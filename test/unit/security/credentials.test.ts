import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/logging/index.js';
import { LoginThrottle } from '../../../src/security/login-throttle.js';
import { hashPassword, Security } from '../../../src/security/index.js';

describe('password hashes', () => {
  it('verify the right password only, with a fresh salt each time', async () => {
    const first = await hashPassword('s3cret');
    const second = await hashPassword('s3cret');
    expect(first).toMatch(/^scrypt\$32768\$8\$3\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    expect(first).not.toBe(second);
    const security = new Security(parseConfig({ auth: { users: [{ name: 'u', passwordHash: first }] } }).auth, createLogger('silent'));
    await expect(security.authenticate({ login: 'u', passcode: 's3cret', remote: '10.0.0.1:1' })).resolves.toMatchObject({ name: 'u', via: 'password' });
    await expect(security.authenticate({ login: 'u', passcode: 'S3cret', remote: '10.0.0.2:1' })).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('refuse a configured hash that Rill cannot read, naming the setting', () => {
    const auth = parseConfig({ auth: { users: [{ name: 'u', passwordHash: 'scrypt$1$2$3' }] } }).auth;
    expect(() => new Security(auth, createLogger('silent'))).toThrow(/user "u" has a password hash Rill cannot read/);
  });
});

describe('LoginThrottle', () => {
  it('holds a token per login being checked, gives it back on success, and refills over a minute', () => {
    let now = 0;
    const throttle = new LoginThrottle(3, () => now);
    throttle.attempt('10.0.0.1');
    throttle.succeeded('10.0.0.1');
    for (let i = 0; i < 3; i++) throttle.attempt('10.0.0.1');
    expect(throttle.exhausted('10.0.0.1')).toBe(true);
    expect(() => throttle.attempt('10.0.0.1')).toThrow(/too many failed logins from this address; try again in 20 s/);
    // Another address is not held back.
    throttle.attempt('10.0.0.2');
    now += 20_000;
    throttle.attempt('10.0.0.1');
    expect(() => throttle.attempt('10.0.0.1')).toThrow(/rate|too many/);
  });
});
