import { InvalidArgumentError } from 'commander';

/** Where a group's offsets are moved to: the `target` of POST /v1/groups/<group>/offsets/reset. */
export type ResetTarget = { to: 'earliest' } | { to: 'latest' } | { to: 'offset'; offset: number } | { to: 'timestamp'; timestamp: number };

/** An ISO 8601 date as epoch milliseconds; null for anything else (Date.parse alone takes odd strings such as "1" or "May"). */
function parseDate(text: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return null;
  const time = Date.parse(text);
  return Number.isFinite(time) ? time : null;
}

/**
 * Reads a reset target as `rill groups reset --to` takes it: earliest, latest, offset:N,
 * timestamp:MS, or an ISO date (bare, or as timestamp:DATE). Null when it is none of those.
 */
export function resetTarget(value: string): ResetTarget | null {
  if (value === 'earliest' || value === 'latest') return { to: value };
  const offset = /^offset:(\d{1,16})$/.exec(value);
  if (offset !== null) return { to: 'offset', offset: Number(offset[1]) };
  const time = value.startsWith('timestamp:') ? value.slice('timestamp:'.length) : null;
  const timestamp = time !== null && /^\d{1,16}$/.test(time) ? Number(time) : parseDate(time ?? value);
  return timestamp === null ? null : { to: 'timestamp', timestamp };
}

/** The --to option's check. */
export function parseResetTarget(value: string): ResetTarget {
  const target = resetTarget(value);
  if (target === null) {
    throw new InvalidArgumentError(`--to takes earliest, latest, offset:N, timestamp:MS or an ISO date (e.g. 2024-05-01T12:00:00Z), not "${value}"`);
  }
  return target;
}
