import { PartitionOfflineError } from '../../storage/index.js';
import type { WorkerFailure } from '../protocol.js';

/** Errors a full disk (or quota) gives a write or an fsync. */
const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT']);

/**
 * What a storage error means for the client: a full disk is retriable; anything else is a storage
 * error. `context` starts the message ("storage error", "fsync failed").
 */
export function failureOf(error: unknown, context: string): WorkerFailure {
  const message = error instanceof Error ? error.message : String(error);
  if (DISK_FULL_CODES.has((error as NodeJS.ErrnoException | null)?.code ?? '')) {
    return { code: 'disk-full', message: `the disk is full (${context}: ${message}); send again once space is freed` };
  }
  if (error instanceof PartitionOfflineError) return { code: 'storage-error', message };
  return { code: 'storage-error', message: `${context}: ${message}` };
}
