import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CallReply } from '../../../src/broker/protocol.js';
import { Durability } from '../../../src/broker/worker/durability.js';
import { createLogger } from '../../../src/logging/index.js';
import { encodeKey, Journal, JournalRecordWriter } from '../../../src/storage/index.js';
import { useTempDirs } from '../../helpers/temp-dir.js';

const logger = createLogger('silent');

describe('Durability (fsync mode)', () => {
  const tempDir = useTempDirs();

  it('answers a group commit before the journal writes its next zeros ahead', async () => {
    const directory = tempDir();
    const journal = Journal.open(directory, { fileBytes: 8 * 1024 * 1024 }, logger);
    const durability = new Durability('fsync', 0, journal, logger);
    const [name] = fs.readdirSync(directory);
    const sizeOf = () => fs.statSync(path.join(directory, name!)).size;
    const allocatedAtOpen = sizeOf();
    expect(allocatedAtOpen).toBeGreaterThan(0);

    const records = new JournalRecordWriter();
    records.add(encodeKey('topics/a/0'), Buffer.alloc(100, 1));
    journal.append(records, []);
    const sizes = await new Promise<{ atAnswer: number }>((resolve) => {
      const reply: CallReply<'append'> = { baseOffsets: [0], failures: [null], buffers: [] };
      durability.answer(reply, [null], () => resolve({ atAnswer: sizeOf() }));
    });

    // The answer went out with the file as it was: the zeros came after it, not on its way.
    expect(sizes.atAnswer).toBe(allocatedAtOpen);
    expect(sizeOf()).toBeGreaterThan(allocatedAtOpen);
    durability.stop();
    await journal.close(false);
  });
});
