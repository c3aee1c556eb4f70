import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../../logging/index.js';
import { configureOpenFiles, Journal, JournalRecordWriter, recoverJournal, type PartitionLog } from '../../storage/index.js';
import { JOURNALS_DIRECTORY, logConfigOf } from '../log-config.js';
import type { FromWorker, PartitionAssignment, ReplyMessage, RequestMessage, ToWorker, WorkerFailure, WorkerInit } from '../protocol.js';
import { Compaction } from './compaction.js';
import { DiskSpace } from './disk-space.js';
import { Durability } from './durability.js';
import { failureOf } from './failures.js';
import { OwnedPartitions, type OwnedPartition } from './owned-partitions.js';

/*
 * A broker worker: owns a share of the partitions, appends the batches it is handed (to their
 * segments, and all of one request in one write to the worker's journal), makes them durable
 * under the configured policy and answers reads. Storage calls are synchronous here on purpose:
 * this thread does nothing else, and while an fdatasync runs on the thread pool, the appends that
 * arrive meanwhile queue up for the next group commit.
 */

const init = workerData as WorkerInit;
const port = parentPort!;
const logger = createLogger(init.logLevel, { component: 'broker-worker', worker: init.workerIndex });
const { storage } = init;
// This thread's cache of open segment files, as fitted to the open-file limit by the front (Broker.start).
configureOpenFiles(storage.openFilesPerWorker);
const dataDir = path.resolve(storage.dataDir);
const logConfig = logConfigOf(storage);
// After a crash (of the process, or of this worker alone), what the segments lost goes back from
// the journal before anything opens; the journal then checkpoints those files in the background.
const journalDirectory = path.join(dataDir, JOURNALS_DIRECTORY, String(init.workerIndex));
const recoveryStarted = performance.now();
const recovered = await recoverJournal(journalDirectory, dataDir, logConfig, logger);
logger.debug({ ms: Math.round(performance.now() - recoveryStarted), files: recovered.files.length }, 'journal recovered');
// Under fsync, readers see only what is durable; otherwise what is written.
const readableEnd = (log: PartitionLog): number => (storage.durability.mode === 'fsync' ? log.durableEndOffset : log.logEndOffset);
const partitions = new OwnedPartitions(dataDir, logConfig, readableEnd, logger, recovered.logs, recovered.files.length > 0 ? recovered.journaledEnds : null);
const diskSpace = new DiskSpace(dataDir, storage.freeSpaceReserveBytes);
/** Zeros written ahead in the journal are data to the reserve: never written into it. */
function mayAllocate(bytes: number): boolean {
  if (!diskSpace.allows(bytes, false)) return false;
  diskSpace.written(bytes);
  return true;
}
const journal = Journal.open(journalDirectory, { fileBytes: storage.journal.fileBytes, mayAllocate }, logger, recovered.files, (key) => {
  const owned = partitions.byJournalKey(key);
  if (owned !== undefined) return owned.log;
  return fs.existsSync(path.join(dataDir, key)) ? null : 'gone';
});
const durability = new Durability(storage.durability.mode, storage.durability.intervalMs, journal, logger);
const journalRecords = new JournalRecordWriter();

function reserveReached(): WorkerFailure {
  const freeMiB = (diskSpace.freeBytes / 2 ** 20).toFixed(1);
  const reserveMiB = (diskSpace.reserveBytes / 2 ** 20).toFixed(1);
  return {
    code: 'disk-full',
    message: `the data directory's disk has ${freeMiB} MiB free, less than storage.freeSpaceReserveBytes (${reserveMiB} MiB): writes to topics resume when space is freed`,
  };
}

/** A full disk is logged when it starts and when writes succeed again, not for every refused batch. */
const diskFull = {
  since: 0,
  start(reason: string): void {
    if (this.since !== 0) return;
    this.since = Date.now();
    logger.warn({ reason }, 'disk full: appends are refused (retriably) until space is freed; reads go on');
  },
  end(): void {
    if (this.since === 0) return;
    logger.info({ refusedForMs: Date.now() - this.since }, 'disk space is back: appends go on');
    this.since = 0;
  },
};

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
}

function append(request: RequestMessage<'append'>): void {
  const baseOffsets: number[] = [];
  const failures: Array<WorkerFailure | null> = [];
  const written: Array<OwnedPartition | null> = [];
  const now = Date.now();
  journalRecords.reset();
  for (let i = 0; i < request.partitionIds.length; i++) {
    const id = request.partitionIds[i]!;
    const batch = request.batches[i]!;
    const outcome = diskSpace.allows(batch.byteLength, partitions.get(id)?.internal ?? false) ? partitions.append(id, batch, now) : reserveReached();
    if ('code' in outcome) {
      baseOffsets.push(-1);
      failures.push(outcome);
      written.push(null);
      if (outcome.code === 'disk-full') diskFull.start(outcome.message);
    } else {
      baseOffsets.push(outcome.baseOffset);
      failures.push(null);
      written.push(outcome.owned);
      // The bytes the segment got: stamped with their offsets, compressed if the topic says so.
      journalRecords.add(outcome.owned.journalKey, outcome.stored);
    }
  }
  if (journalRecords.byteLength > 0) journalAppend(baseOffsets, failures, written);
  for (let i = 0; i < written.length; i++) {
    const owned = written[i];
    if (owned === null || owned === undefined) continue;
    diskSpace.written(request.batches[i]!.byteLength);
    if (!owned.internal) diskFull.end();
    durability.written(owned);
  }
  // The batches are views of one buffer (Broker packs a turn's batches): it goes back once.
  const buffers = [...new Set(request.batches.map((batch) => batch.buffer as ArrayBuffer))];
  durability.answer({ baseOffsets, failures, buffers }, written, (reply) => {
    const message: ReplyMessage<'append'> = { type: 'append', requestId: request.requestId, ...reply };
    send(message, reply.buffers);
  });
}

/**
 * Writes the request's journal records. If that fails, none of its batches is durable anywhere
 * but each is in its segment: they are cut off there again and answered as failed.
 */
function journalAppend(baseOffsets: number[], failures: Array<WorkerFailure | null>, written: Array<OwnedPartition | null>): void {
  try {
    journal.append(
      journalRecords,
      written.flatMap((owned) => (owned === null ? [] : [owned.log])),
    );
    return;
  } catch (error) {
    const failure = failureOf(error, 'journal write failed');
    if (failure.code === 'disk-full') diskFull.start(failure.message);
    else logger.error({ err: error }, 'journal write failed: the appends of the request are cut off and reported as failed');
    // A batch per partition and request, but the first offset of each partition is where to cut, whatever the order.
    const cutAt = new Map<OwnedPartition, number>();
    for (let i = 0; i < written.length; i++) {
      const owned = written[i];
      if (owned === null || owned === undefined) continue;
      cutAt.set(owned, Math.min(cutAt.get(owned) ?? Number.MAX_SAFE_INTEGER, baseOffsets[i]!));
      baseOffsets[i] = -1;
      failures[i] = failure;
      written[i] = null;
    }
    for (const [owned, offset] of cutAt) {
      try {
        owned.log.discardFrom(offset);
      } catch (cutError) {
        logger.fatal({ err: cutError, topic: owned.assignment.topic, partition: owned.assignment.partition }, 'partition offline');
      }
    }
  }
}

function read(request: RequestMessage<'read'>): void {
  const reply = partitions.read(request.partitionId, request.offset, request.maxBytes);
  const message: ReplyMessage<'read'> = { type: 'read', requestId: request.requestId, ...reply };
  send(message, reply.data === null ? [] : [reply.data.buffer as ArrayBuffer]);
}

function offsets(request: RequestMessage<'offsets'>): void {
  const message: ReplyMessage<'offsets'> = {
    type: 'offsets',
    requestId: request.requestId,
    ...partitions.offsets(request.partitionId, request.timestamp, request.appendedSince),
  };
  send(message);
}

/**
 * Closes a deleted topic's partitions. What was appended to them is made durable and answered
 * first (its publishers were told the topic existed); the journal then writes down that their
 * records are never to be replayed (a topic of the same name may come next, in the same directories).
 */
async function drop(request: RequestMessage<'drop'>): Promise<void> {
  durability.drain();
  // A checkpoint running may be syncing one of these logs: closed only once it is over.
  await journal.settled();
  let failure: WorkerFailure | undefined;
  const removed = partitions.remove(request.partitionIds);
  try {
    journal.drop(removed.map((owned) => ({ key: owned.journalKey.toString('utf8'), log: owned.log })));
  } catch (error) {
    // The directories go all the same; a start after a crash also skips the records of partitions whose directory is gone.
    failure = failureOf(error, 'could not record the dropped partitions in the journal');
    logger.error({ err: error, partitions: removed.length }, 'recording dropped partitions in the journal failed');
  }
  const message: ReplyMessage<'drop'> = { type: 'drop', requestId: request.requestId, ...(failure === undefined ? {} : { failure }) };
  send(message);
}

async function close(request: RequestMessage<'close'>): Promise<void> {
  clearInterval(retentionTimer);
  await compaction.stop();
  durability.stop();
  durability.drain();
  await journal.stopCheckpoints();
  const clean = await partitions.close();
  // Every log's segments hold what the journal held: its files become spares. Otherwise the next start replays them.
  await journal.close(clean);
  send({ type: 'close', requestId: request.requestId });
}

/** Set once a partition could not be opened: the worker is closing and answers nothing more. */
let failedToOpen = false;

/**
 * Opens partitions handed to this worker. A worker that cannot open one of them (too many open
 * files, a damaged directory) cannot serve its share: it says which partition and why (the
 * supervisor logs it and shows it in /health), closes the logs it had opened, giving their files
 * back, and ends; the supervisor restarts it after a backoff, and the restart tries again.
 */
function open(assignments: PartitionAssignment[]): void {
  const started = performance.now();
  const failure = partitions.open(assignments);
  logger.debug({ partitions: assignments.length, ms: Math.round(performance.now() - started) }, 'partitions opened');
  if (failure === null) {
    // Journal files taken over after a crash can be checkpointed once their partitions are open.
    journal.checkpointSoon();
    return;
  }
  failedToOpen = true;
  void compaction.stop();
  const { assignment, error } = failure;
  send({ type: 'fatal', message: `could not open partition ${assignment.partition} of topic ${assignment.topic} (${error.message})` });
  clearInterval(retentionTimer);
  durability.stop();
  partitions
    .close()
    .then((clean) => journal.close(clean))
    .catch((closeError: unknown) => logger.error({ err: closeError }, 'closing the partitions after a failed open failed'))
    .finally(() => process.exit(1));
}

const retentionTimer = setInterval(() => partitions.enforceRetention(Date.now()), storage.retention.checkIntervalMs);
retentionTimer.unref();
const compaction = new Compaction(partitions, storage.compaction, logger);

port.on('message', (message: ToWorker) => {
  // Requests that arrive while the worker closes after a failed open are failed by the supervisor when it ends.
  if (failedToOpen) return;
  switch (message.type) {
    case 'open':
      open(message.partitions);
      break;
    case 'append':
      append(message);
      break;
    case 'read':
      read(message);
      break;
    case 'offsets':
      offsets(message);
      break;
    case 'configure':
      partitions.configure(message.partitions);
      break;
    case 'drop':
      void drop(message);
      break;
    case 'close':
      void close(message);
      break;
  }
});
