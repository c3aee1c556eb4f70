import { parentPort, workerData } from 'node:worker_threads';
import { createLogger } from '../logging/index.js';
import { OffsetOutOfRangeError, PartitionLog, type LogConfig } from '../storage/index.js';
import type { FromWorker, PartitionAssignment, ToWorker, WorkerInit } from './messages.js';

/*
 * A broker worker: owns a share of the partitions, appends the batches it is handed, makes them
 * durable under the configured policy and answers reads. Storage calls are synchronous here on
 * purpose: this thread does nothing else, and while an fsync runs on the thread pool, the appends
 * that arrive meanwhile queue up for the next group commit.
 */

const init = workerData as WorkerInit;
const port = parentPort!;
const logger = createLogger(init.logLevel, { component: 'broker-worker', worker: init.workerIndex });
const { storage } = init;
const policy = storage.durability.mode;
const logConfig: LogConfig = {
  segmentBytes: storage.segmentBytes,
  segmentMs: storage.segmentMs,
  indexIntervalBytes: storage.indexIntervalBytes,
  retentionMs: storage.retention.ms,
  retentionBytes: storage.retention.bytes,
  flushOnRoll: policy !== 'os',
};

interface OwnedPartition {
  assignment: PartitionAssignment;
  log: PartitionLog;
}

const partitions = new Map<number, OwnedPartition>();

interface PendingAppend {
  requestId: number;
  baseOffsets: number[];
  errors: Array<string | null>;
  buffers: ArrayBuffer[];
}

/** Appends written but not yet covered by an fsync (fsync policy only). */
let waitingForSync: PendingAppend[] = [];
const dirty = new Set<OwnedPartition>();
let syncRunning = false;
let syncScheduled = false;

function send(message: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer ?? []);
}

function open(assignments: PartitionAssignment[]): void {
  for (const assignment of assignments) {
    if (partitions.has(assignment.id)) continue;
    const { log, recovery } = PartitionLog.open(assignment.directory, logConfig);
    partitions.set(assignment.id, { assignment, log });
    if (recovery.truncatedBytes > 0 || recovery.droppedSegments > 0) {
      logger.warn(
        { topic: assignment.topic, partition: assignment.partition, ...recovery },
        'recovery truncated a damaged log tail',
      );
    }
  }
}

function append(message: Extract<ToWorker, { type: 'append' }>): void {
  const baseOffsets: number[] = [];
  const errors: Array<string | null> = [];
  const now = Date.now();
  for (let i = 0; i < message.partitionIds.length; i++) {
    const owned = partitions.get(message.partitionIds[i]);
    const bytes = message.batches[i];
    if (owned === undefined) {
      baseOffsets.push(-1);
      errors.push('partition is not open on this broker worker');
      continue;
    }
    try {
      const info = owned.log.append(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), now);
      baseOffsets.push(info.baseOffset);
      errors.push(null);
      if (policy !== 'os') dirty.add(owned);
    } catch (error) {
      logger.error({ err: error, topic: owned.assignment.topic, partition: owned.assignment.partition }, 'append failed');
      baseOffsets.push(-1);
      errors.push(`storage error: ${(error as Error).message}`);
    }
  }
  const buffers = message.batches.map((batch) => batch.buffer as ArrayBuffer);
  const pending: PendingAppend = { requestId: message.requestId, baseOffsets, errors, buffers };
  if (policy === 'fsync') {
    waitingForSync.push(pending);
    scheduleSync();
  } else {
    reply(pending);
  }
}

function reply(pending: PendingAppend): void {
  send({ type: 'appended', ...pending }, pending.buffers);
}

function scheduleSync(): void {
  if (syncRunning || syncScheduled) return;
  syncScheduled = true;
  // Let every append already queued on the port be written first: one fsync then covers them all.
  setImmediate(() => {
    syncScheduled = false;
    void groupCommit();
  });
}

async function groupCommit(): Promise<void> {
  syncRunning = true;
  const covered = waitingForSync;
  waitingForSync = [];
  const logs = [...dirty];
  dirty.clear();
  let failure: Error | null = null;
  try {
    await Promise.all(logs.map((owned) => owned.log.flush()));
  } catch (error) {
    failure = error as Error;
    logger.error({ err: error }, 'fsync failed: appends in this group commit are reported as failed');
  }
  for (const pending of covered) {
    if (failure !== null) {
      pending.errors = pending.errors.map(() => `fsync failed: ${failure!.message}`);
      pending.baseOffsets = pending.baseOffsets.map(() => -1);
    }
    reply(pending);
  }
  syncRunning = false;
  if (waitingForSync.length > 0) scheduleSync();
}

function readableEnd(log: PartitionLog): number {
  return policy === 'fsync' ? log.durableEndOffset : log.logEndOffset;
}

function read(message: Extract<ToWorker, { type: 'read' }>): void {
  const owned = partitions.get(message.partitionId);
  if (owned === undefined) {
    send({ type: 'read-result', requestId: message.requestId, data: null, logStartOffset: 0, logEndOffset: 0, error: 'unknown-partition' });
    return;
  }
  const { log } = owned;
  const end = readableEnd(log);
  try {
    const bytes = message.offset >= end ? null : log.read(message.offset, message.maxBytes, end);
    const data = bytes === null || bytes.length === 0 ? null : bytes;
    send(
      { type: 'read-result', requestId: message.requestId, data, logStartOffset: log.logStartOffset, logEndOffset: end },
      data === null ? [] : [data.buffer as ArrayBuffer],
    );
  } catch (error) {
    const code = error instanceof OffsetOutOfRangeError ? 'offset-out-of-range' : (error as Error).message;
    send({ type: 'read-result', requestId: message.requestId, data: null, logStartOffset: log.logStartOffset, logEndOffset: end, error: code });
  }
}

function offsets(message: Extract<ToWorker, { type: 'offsets' }>): void {
  const owned = partitions.get(message.partitionId);
  if (owned === undefined) {
    send({ type: 'offsets-result', requestId: message.requestId, logStartOffset: 0, logEndOffset: 0, error: 'unknown-partition' });
    return;
  }
  const { log } = owned;
  const end = readableEnd(log);
  const result: FromWorker = { type: 'offsets-result', requestId: message.requestId, logStartOffset: log.logStartOffset, logEndOffset: end };
  if (message.timestamp !== undefined) result.offsetForTimestamp = Math.min(log.offsetForTimestamp(message.timestamp), end);
  send(result);
}

async function close(requestId: number): Promise<void> {
  clearInterval(retentionTimer);
  clearInterval(flushTimer);
  await Promise.all([...partitions.values()].map((owned) => owned.log.flush()));
  for (const owned of partitions.values()) owned.log.close();
  partitions.clear();
  send({ type: 'closed', requestId });
}

function enforceRetention(): void {
  const now = Date.now();
  for (const { log, assignment } of partitions.values()) {
    const deleted = log.deleteExpiredSegments(now);
    if (deleted > 0) {
      logger.info({ topic: assignment.topic, partition: assignment.partition, deleted, logStartOffset: log.logStartOffset }, 'retention deleted segments');
    }
  }
}

const retentionTimer = setInterval(enforceRetention, storage.retention.checkIntervalMs);
retentionTimer.unref();
const flushTimer = setInterval(() => {
  if (policy !== 'interval') return;
  const logs = [...dirty];
  dirty.clear();
  for (const owned of logs) owned.log.flush().catch((error: unknown) => logger.error({ err: error }, 'periodic fsync failed'));
}, policy === 'interval' ? storage.durability.intervalMs : 2 ** 30);
flushTimer.unref();

port.on('message', (message: ToWorker) => {
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
    case 'close':
      void close(message.requestId);
      break;
  }
});
