export type StartPosition = { kind: 'latest' } | { kind: 'earliest' } | { kind: 'offset'; offset: number } | { kind: 'timestamp'; timestamp: number };

/**
 * Reads the `from` header of a SUBSCRIBE: `latest` (the default), `earliest`, `offset:<n>` (or a
 * bare number), or `timestamp:<epoch ms or ISO date>`. Returns null when it is none of those.
 */
export function parseStartPosition(value: string | undefined): StartPosition | null {
  if (value === undefined || value === 'latest') return { kind: 'latest' };
  if (value === 'earliest') return { kind: 'earliest' };
  const offsetText = value.startsWith('offset:') ? value.slice(7) : value;
  if (/^\d{1,16}$/.test(offsetText)) return { kind: 'offset', offset: Number(offsetText) };
  if (value.startsWith('timestamp:')) {
    const text = value.slice(10);
    const timestamp = /^\d{1,16}$/.test(text) ? Number(text) : Date.parse(text);
    if (Number.isFinite(timestamp)) return { kind: 'timestamp', timestamp };
  }
  return null;
}
