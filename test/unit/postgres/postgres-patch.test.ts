import { describe, expect, it } from 'vitest';
import { postgresPatched } from '../../../src/postgres/connection.js';

describe('postgres.js as installed', () => {
  it('carries the patch that paces rounds of the hosts while there is no primary (npm install applies it)', () => {
    expect(postgresPatched()).toBe(true);
  });
});
