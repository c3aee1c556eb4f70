import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forEachRecord, PartitionLog, RecordBatchBuilder, type LogConfig } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const config: LogConfig = {
  segmentBytes: 1 << 20,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 128,
  retentionMs: -1,
  retentionBytes: -1,
};

const SEGMENT = '00000000000000000000';

/** Every record's messageID and value, in offset order, as recovery left the log. */
function contents(log: PartitionLog): string[] {
  const seen: string[] = [];
  let offset = log.logStartOffset;
  while (offset < log.logEndOffset) {
    const data = log.read(offset, 1 << 20);
    if (data.length === 0) break;
    forEachRecord(data, offset, (r) => void seen.push(`${r.offset}:${r.messageId}:${r.value.toString()}`));
    offset = Number(seen.at(-1)!.split(':')[0]) + 1;
  }
  return seen;
}

/**
 * Recovery after a crash that left the newest segment cut or damaged at any byte: it never
 * throws, never misreads a record, and keeps exactly the whole batches before the damage.
 */
describe('recovery at every position', () => {
  const tempDir = useTempDirs();

  function original(): { dir: string; log: Buffer; records: string[]; batchEnds: number[] } {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    const batchEnds: number[] = [];
    for (let b = 0; b < 12; b++) {
      const builder = new RecordBatchBuilder(64);
      for (let r = 0; r < 1 + (b % 3); r++) builder.append(1000 + b, `k${b}`, `id-${b}-${r}`, [['h', String(b)]], Buffer.from(`v${b}.${r}`.repeat(3)));
      log.append(builder.finish());
      batchEnds.push(fs.statSync(path.join(dir, `${SEGMENT}.log`)).size);
    }
    const records = contents(log);
    log.close();
    return { dir, log: fs.readFileSync(path.join(dir, `${SEGMENT}.log`)), records, batchEnds };
  }

  /** A partition directory holding `bytes` as its only segment, as after kill -9 (no clean-shutdown marker). */
  function crashed(bytes: Buffer, indexesFrom: string): string {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, `${SEGMENT}.log`), bytes);
    for (const ext of ['index', 'timeindex']) fs.copyFileSync(path.join(indexesFrom, `${SEGMENT}.${ext}`), path.join(dir, `${SEGMENT}.${ext}`));
    return dir;
  }

  it('keeps the whole batches before a cut at any byte', () => {
    const { dir, log, records, batchEnds } = original();
    for (let cut = 0; cut <= log.length; cut++) {
      const copy = crashed(log.subarray(0, cut), dir);
      const { log: recovered } = PartitionLog.open(copy, config);
      const wholeBatches = batchEnds.filter((end) => end <= cut).length;
      const kept = contents(recovered);
      expect(kept, `cut at ${cut}`).toEqual(records.slice(0, kept.length));
      expect(recovered.logEndOffset).toBe(kept.length);
      expect(fs.statSync(path.join(copy, `${SEGMENT}.log`)).size).toBe(wholeBatches === 0 ? 0 : batchEnds[wholeBatches - 1]);
      recovered.close();
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('never misreads a record when any one byte is damaged, and keeps what precedes the damaged batch', () => {
    const { dir, log, records, batchEnds } = original();
    for (let at = 0; at < log.length; at++) {
      const damaged = Buffer.from(log);
      damaged[at] = damaged[at]! ^ 0x5a;
      const copy = crashed(damaged, dir);
      const { log: recovered } = PartitionLog.open(copy, config);
      const kept = contents(recovered);
      // Whatever survives is the original, record for record: a prefix, never an altered record.
      expect(kept, `damage at ${at}`).toEqual(records.slice(0, kept.length));
      // And nothing before the damaged batch is lost.
      const intactBatches = batchEnds.filter((end) => end <= at).length;
      const intactRecords = recordsBefore(intactBatches);
      expect(kept.length, `damage at ${at}`).toBeGreaterThanOrEqual(intactRecords);
      recovered.close();
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });
});

/** Offsets held by the first `batches` batches (batch b holds 1 + b % 3 records). */
function recordsBefore(batches: number): number {
  let count = 0;
  for (let b = 0; b < batches; b++) count += 1 + (b % 3);
  return count;
}
