import type { RillError } from '../../errors/index.js';

/**
 * Whoever appended a record, told once what became of it: its offset, or why it was not stored
 * (`unavailable` when sending it again may succeed, `storage-error` otherwise).
 */
export interface AppendTicket {
  settle(offset: number, failure: RillError | null): void;
}
