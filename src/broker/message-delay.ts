/**
 * Delayed delivery: a message stored with the record header `deliver-at` (epoch milliseconds) is
 * stored at once and readable by tails, but consumer groups get it only from that time on. The
 * publish path sets it (from the SEND's `deliver-at` or `delay` header).
 */
export const DELIVER_AT_HEADER = 'deliver-at';

/** When a group may have the message (epoch ms), if that is after `now`; else 0. */
export function heldUntil(headers: ReadonlyArray<readonly [string, string]>, now: number): number {
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i]!;
    if (header[0] === DELIVER_AT_HEADER) {
      const at = Number(header[1]);
      return Number.isFinite(at) && at > now ? at : 0;
    }
  }
  return 0;
}
