import cliProgress from 'cli-progress';
import Table from 'cli-table3';

type Cell = string | number | boolean | null | undefined;

/** One JSON document on stdout, on one line: what --json prints. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** A table for people: upper-case column headers, no borders, no colours (output is often piped to grep). */
export function printTable(head: string[], rows: Cell[][]): void {
  const table = new Table({
    head,
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 3 },
  });
  for (const row of rows) table.push(row.map((cell) => (cell === null || cell === undefined ? '-' : cell)));
  // cli-table3 pads the last column too: trailing spaces help no one.
  process.stdout.write(`${table.toString().replace(/ +$/gm, '')}\n`);
}

/** A progress bar on stderr; does nothing when stderr is not a terminal, so piped and captured output stay clean. */
export interface Progress {
  /** Sets how far it got, with the rate shown beside it. */
  update(value: number): void;
  stop(): void;
}

/**
 * A bar when the total is known (`label [=====---] 40% 4000/10000 2500/s`), a running count when
 * it is not (a produce reading standard input).
 */
export function progress(label: string, total: number | null, unit: string): Progress {
  if (process.stderr.isTTY !== true) return { update: () => {}, stop: () => {} };
  const format =
    total === null ? `${label} {value} ${unit} | {rate}/s | {duration}s` : `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate}/s | {duration}s`;
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: false, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(total ?? 0, 0, { rate: 0 });
  return {
    update: (value) => {
      const seconds = (performance.now() - started) / 1000;
      bar.update(value, { rate: seconds > 0 ? Math.round(value / seconds) : 0 });
    },
    stop: () => bar.stop(),
  };
}
