import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildControlBatch, compressBatch, PartitionLog, RecordBatchBuilder, type LogConfig } from '../../src/storage/index.js';
import { RecordBatchBuilder as LegacyBatchBuilder, stampBatch as stampLegacyBatch } from '../../src/storage/migration/legacy-batch.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
const SEGMENT = '00000000000000000000.log';

const config: LogConfig = {
  segmentBytes: 64 << 20,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 4096,
  retentionMs: -1,
  retentionBytes: -1,
};

interface Output {
  stdout: string;
  stderr: string;
  code: number;
  /** stdout, one parsed JSON value a line. */
  lines: Array<Record<string, unknown>>;
}

function dump(args: string[]): Promise<Output> {
  return run(process.execPath, ['--import', 'tsx', ENTRY, 'dump-segment', ...args], { timeout: 20_000, maxBuffer: 64 << 20 }).then(
    ({ stdout, stderr }) => ({ stdout, stderr, code: 0, lines: parseLines(stdout) }),
    (error: { stdout: string; stderr: string; code: number }) => ({
      stdout: error.stdout,
      stderr: error.stderr,
      code: error.code,
      lines: parseLines(error.stdout),
    }),
  );
}

function parseLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const byType = (lines: Array<Record<string, unknown>>, type: string): Array<Record<string, unknown>> => lines.filter((line) => line.type === type);

describe('rill dump-segment', () => {
  const tempDir = useTempDirs();

  /**
   * A partition written by PartitionLog: a plain batch (one record with a binary value), a gzip
   * batch of 20 records and a commit marker. Returns the segment's path and where each batch starts.
   */
  async function writeSegment(): Promise<{ file: string; positions: number[] }> {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    const positions: number[] = [];
    const appended = (batch: Buffer): void => {
      positions.push(log.sizeInBytes);
      log.append(batch);
    };
    const plain = new RecordBatchBuilder(64);
    plain.append(1_700_000_000_000, 'order-1', 'm-1', [['content-type', 'application/json']], Buffer.from('{"message":"héllo"}'));
    plain.append(1_700_000_000_003, null, null, null, Buffer.from([0xff, 0xfe, 0x00]));
    appended(plain.finish());
    const gzip = new RecordBatchBuilder(64);
    for (let i = 0; i < 20; i++) gzip.append(1_700_000_000_100 + i, `k${i % 3}`, `m-${10 + i}`, null, Buffer.from('the same words again and again '.repeat(3)));
    appended(compressBatch(gzip.finish(), 'gzip'));
    appended(buildControlBatch({ type: 'commit', producerId: 4000, producerEpoch: 2, coordinatorEpoch: 7, timestamp: 1_700_000_000_200 }));
    await log.flush();
    log.close();
    return { file: path.join(dir, SEGMENT), positions };
  }

  it('prints one JSON line per batch, with every header field decoded, and an end line', async () => {
    const { file, positions } = await writeSegment();
    const { code, lines, stderr } = await dump([file]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(lines.map((line) => line.type)).toEqual(['batch', 'batch', 'batch', 'end']);
    const [plain, gzip, marker, end] = lines;
    const size = fs.statSync(file).size;
    expect(plain).toEqual({
      type: 'batch',
      baseOffset: 0,
      lastOffset: 1,
      count: 2,
      position: 0,
      size: positions[1],
      magic: 2,
      crc: plain!.computedCrc,
      computedCrc: expect.any(Number),
      crcValid: true,
      valid: true,
      compression: 'none',
      timestampType: 'CreateTime',
      transactional: false,
      control: false,
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      partitionLeaderEpoch: 0,
      baseTimestamp: 1_700_000_000_000,
      maxTimestamp: 1_700_000_000_003,
    });
    expect(gzip).toMatchObject({ baseOffset: 2, lastOffset: 21, count: 20, position: positions[1], compression: 'gzip', crcValid: true, valid: true });
    expect(gzip).toMatchObject({ baseTimestamp: 1_700_000_000_100, maxTimestamp: 1_700_000_000_119 });
    expect(marker).toMatchObject({ baseOffset: 22, lastOffset: 22, count: 1, position: positions[2], size: size - positions[2]! });
    expect(marker).toMatchObject({ control: true, transactional: true, producerId: 4000, producerEpoch: 2, baseSequence: -1, crcValid: true });
    expect(end).toEqual({ type: 'end', position: size, nextOffset: 23, batches: 3 });
  });

  it('with --records, prints each record (UTF-8 or base64 values) and the marker of a control batch', async () => {
    const { file } = await writeSegment();
    const { code, lines } = await dump([file, '--records']);
    expect(code).toBe(0);
    const records = byType(lines, 'record');
    expect(records.map((record) => record.offset)).toEqual(Array.from({ length: 22 }, (_, i) => i));
    expect(records[0]).toEqual({
      type: 'record',
      offset: 0,
      timestamp: 1_700_000_000_000,
      key: 'order-1',
      messageId: 'm-1',
      headers: [['content-type', 'application/json']],
      value: '{"message":"héllo"}',
      valueEncoding: 'utf8',
    });
    // Not UTF-8: base64, and said so.
    expect(records[1]).toMatchObject({ offset: 1, key: null, messageId: null, headers: [], value: '//4A', valueEncoding: 'base64' });
    // Records of a gzip batch are decompressed.
    expect(records[21]).toMatchObject({ offset: 21, key: 'k1', messageId: 'm-29', value: 'the same words again and again '.repeat(3) });
    expect(byType(lines, 'control')).toEqual([
      { type: 'control', offset: 22, timestamp: 1_700_000_000_200, marker: 'commit', coordinatorEpoch: 7, producerId: 4000, producerEpoch: 2 },
    ]);
    // Each batch's line comes before its records.
    expect(lines.findIndex((line) => line.type === 'batch' && line.baseOffset === 2)).toBe(lines.findIndex((line) => line.offset === 1) + 1);
  });

  it('with --from-offset, starts at the batch holding that offset and its record', async () => {
    const { file } = await writeSegment();
    const { lines } = await dump([file, '--records', '--from-offset', '20']);
    expect(byType(lines, 'batch').map((batch) => batch.baseOffset)).toEqual([2, 22]);
    expect(byType(lines, 'record').map((record) => record.offset)).toEqual([20, 21]);
    expect(lines.at(-1)).toMatchObject({ type: 'end', nextOffset: 23 });
  });

  it('stops with a clear line at a torn batch, as recovery would cut it', async () => {
    const { file, positions } = await writeSegment();
    const torn = path.join(path.dirname(file), 'torn', SEGMENT);
    fs.mkdirSync(path.dirname(torn));
    fs.writeFileSync(torn, fs.readFileSync(file).subarray(0, positions[2]! + 30));
    const { code, lines, stderr } = await dump([torn]);
    expect(code).toBe(0);
    expect(byType(lines, 'batch').map((batch) => batch.baseOffset)).toEqual([0, 2]);
    expect(lines.at(-1)).toEqual({ type: 'stop', position: positions[2], nextOffset: 22, reason: expect.stringMatching(/^torn batch: 30 bytes left/) });
    expect(stderr).toMatch(new RegExp(`torn batch: .* at byte ${positions[2]}`));

    // A batch cut inside its records: the header says more bytes than the file has.
    fs.writeFileSync(torn, fs.readFileSync(file).subarray(0, positions[1]! + 100));
    const inside = await dump([torn]);
    expect(inside.lines.at(-1)).toMatchObject({ type: 'stop', position: positions[1], nextOffset: 2 });
    expect(inside.lines.at(-1)!.reason).toMatch(/^torn batch: it claims \d+ bytes, the file has 100 left$/);
  });

  it('prints a damaged batch with its CRC check failed, then stops', async () => {
    const { file, positions } = await writeSegment();
    const bytes = fs.readFileSync(file);
    bytes[positions[1]! + 100]! ^= 0x40; // inside the gzip batch's compressed records
    fs.writeFileSync(file, bytes);
    const { code, lines, stderr } = await dump([file, '--records']);
    expect(code).toBe(0);
    const damaged = byType(lines, 'batch')[1]!;
    expect(damaged).toMatchObject({ baseOffset: 2, crcValid: false, valid: false });
    expect(damaged.crc).not.toBe(damaged.computedCrc);
    // Nothing of the damaged batch's records, nor of what follows it.
    expect(byType(lines, 'record').map((record) => record.offset)).toEqual([0, 1]);
    expect(byType(lines, 'control')).toEqual([]);
    expect(lines.at(-1)).toEqual({
      type: 'stop',
      position: positions[1],
      nextOffset: 2,
      reason: expect.stringMatching(/^corrupt batch: CRC32C \d+ stored, \d+ computed$/),
    });
    expect(stderr).toMatch(/corrupt batch/);
  });

  it('stops at a batch whose offsets do not follow the previous one, as recovery does', async () => {
    const { file, positions } = await writeSegment();
    const bytes = fs.readFileSync(file);
    bytes.writeBigInt64BE(50n, positions[2]!); // the marker's base offset (outside its CRC)
    fs.writeFileSync(file, bytes);
    const { lines } = await dump([file]);
    expect(lines.at(-1)).toMatchObject({ type: 'stop', position: positions[2], nextOffset: 22 });
    expect(lines.at(-1)!.reason).toMatch(/out of sequence: the batch starts at offset 50, the previous one ended at 22/);
  });

  it('reads a segment larger than its read chunk, with a batch larger than the chunk', async () => {
    const dir = tempDir();
    const { log } = PartitionLog.open(dir, config);
    const sizes: number[] = [];
    for (let b = 0; b < 6; b++) {
      const builder = new RecordBatchBuilder(64);
      // 700 KiB batches straddle the 1 MiB chunks; the 2.5 MiB one does not fit one.
      const value = Buffer.alloc(b === 3 ? 2_500_000 : 700_000, 0x61 + b);
      builder.append(1_000 + b, `k${b}`, `m${b}`, null, value);
      const before = log.sizeInBytes;
      log.append(builder.finish());
      sizes.push(log.sizeInBytes - before);
    }
    await log.flush();
    log.close();
    const { code, lines } = await dump([path.join(dir, SEGMENT), '--records']);
    expect(code).toBe(0);
    const batches = byType(lines, 'batch');
    expect(batches.map((batch) => [batch.baseOffset, batch.size, batch.crcValid])).toEqual(sizes.map((size, b) => [b, size, true]));
    const records = byType(lines, 'record');
    expect(records.map((record) => (record.value as string).length)).toEqual([700_000, 700_000, 700_000, 2_500_000, 700_000, 700_000]);
    expect(records.every((record, b) => (record.value as string) === String.fromCharCode(0x61 + b).repeat((record.value as string).length))).toBe(true);
    expect(lines.at(-1)).toEqual({ type: 'end', position: sizes.reduce((a, b) => a + b), nextOffset: 6, batches: 6 });
  });

  it('names `rill migrate` for a segment of the old format', async () => {
    const dir = tempDir();
    const builder = new LegacyBatchBuilder(64);
    builder.append(1_000, 'k', 'm', null, Buffer.from('a value long enough for a whole v2 header'));
    const batch = builder.finish();
    stampLegacyBatch(batch, 0);
    fs.writeFileSync(path.join(dir, SEGMENT), batch);
    const { code, lines } = await dump([path.join(dir, SEGMENT)]);
    expect(code).toBe(0);
    expect(lines).toEqual([{ type: 'stop', position: 0, nextOffset: 0, reason: expect.stringContaining('rill migrate') }]);
    expect(lines[0]!.reason).toMatch(/^magic 1, not a RecordBatch v2/);
  });

  it('exits 1 with a message for a missing file, and 2 for bad arguments', async () => {
    const dir = tempDir();
    const missing = await dump([path.join(dir, 'nothing.log')]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain(`cannot open ${path.join(dir, 'nothing.log')}: no such file`);
    const directory = await dump([dir]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toContain('is not a file');
    expect((await dump([])).code).toBe(2);
    const badOffset = await dump([path.join(dir, SEGMENT), '--from-offset', 'ten']);
    expect(badOffset.code).toBe(2);
    expect(badOffset.stderr).toMatch(/--from-offset takes an offset/);
  });
});
