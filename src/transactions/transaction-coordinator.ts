import { type AppendTicket, type Broker, type DeduplicatedTicket, type PreparedMessage, type Topic, WorkerStoppedError } from '../broker/index.js';
import { RillError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import {
  BATCH_HEADER_BYTES,
  failpointsActive,
  RecordBatchBuilder,
  readBatchInfo,
  readBatchProducer,
  setBatchProducer,
  transactionFailpoint,
} from '../storage/index.js';
import { type CommittedTransaction, type GroupOffset, TransactionLog, type TransactionPart } from './transaction-log.js';

/**
 * A consumer group's offset commits made part of a transaction (Kafka's sendOffsetsToTransaction),
 * as the group coordinator hands them over: fenced when the transaction is decided, written once
 * its messages are stored.
 */
export interface TransactionalOffsets {
  readonly group: string;
  /** Resolves when the offsets may be fenced: earlier transactions committing the same partitions are decided. */
  ready(): Promise<void>;
  /**
   * Throws when the committer no longer owns a partition (the group rebalanced: a zombie); else
   * holds the offsets as pending, so that a new owner starts from the transaction's outcome, and
   * returns them, to be recorded with the transaction.
   */
  fence(): ReadonlyArray<{ topic: string; partition: number; offset: number }>;
  /** The transaction's record is durable: it will be applied, whatever happens. */
  decided(): void;
  /** Commits them: the transaction is decided and its messages are stored. */
  write(): Promise<void>;
  /** The transaction is over (committed or not): the offsets are no longer pending. */
  release(): void;
}

/** How start-up commits the offsets of a transaction decided before a crash. */
export interface OffsetRecovery {
  /** Commits them unless a later commit passed them already. */
  commitForward(group: string, offsets: ReadonlyArray<{ topic: string; partition: number; offset: number }>): Promise<void>;
}

/** The broker closed while a decided transaction was being applied: it is completed at the next start. */
class ShutDownError extends RillError {
  constructor() {
    super('unavailable', 'the broker is shutting down');
  }
}

/**
 * A transaction that failed after it was decided (the broker shutting down while applying it): it
 * is not stored yet, but it will be (at the next start), so its inputs must not be delivered again.
 */
export class DecidedTransactionError extends RillError {}

/** One message of a transaction, as the publish path prepared it. */
type TransactionMessage = PreparedMessage;

/** What committing and recovering transactions use of the broker. */
type TransactionBroker = Pick<Broker, 'topics' | 'topic' | 'appendAndWait' | 'appendBatch' | 'offsets' | 'read' | 'storedEnd' | 'deduplication'>;

const RETRY_MIN_MS = 50;
const RETRY_MAX_MS = 2000;
/** How long start-up waits for a transaction to complete before it goes on and leaves it to finish in the background. */
const RECOVERY_PATIENCE_MS = 30_000;

/**
 * One message's way through a COMMIT. The deduplicator decides first (a resend of a stored message
 * is a duplicate and left out; one whose first copy is in flight waits for it); once every message
 * is decided the transaction is committed with those left, and each is answered with its offset.
 */
class TransactionEntry implements DeduplicatedTicket {
  /** 'included': to be stored, with the deduplicator's ticket (or none); 'left-out': answered already. */
  state: 'undecided' | 'included' | 'left-out' = 'undecided';
  /** Later messages of the same transaction with the same messageID: answered as this one's duplicates. */
  followers: DeduplicatedTicket[] | null = null;
  /** What the deduplicator gave to record the outcome with (its own ticket), or this entry. */
  recorder: AppendTicket | null = null;
  failure: RillError | null = null;

  constructor(
    readonly message: TransactionMessage,
    readonly ticket: DeduplicatedTicket,
    private readonly decided: () => void,
  ) {}

  duplicate(partition: number, offset: number): void {
    this.state = 'left-out';
    this.ticket.duplicate(partition, offset);
    if (this.followers !== null) for (const follower of this.followers) follower.duplicate(partition, offset);
    this.decided();
  }

  settle(offset: number, failure: RillError | null): void {
    if (this.state === 'included') {
      // The transaction's outcome, through the deduplicator: the producer hears it now.
      this.ticket.settle(offset, failure);
      if (this.followers !== null) {
        for (const follower of this.followers) {
          if (failure === null) follower.duplicate(this.message.partition, offset);
          else follower.settle(-1, failure);
        }
      }
      return;
    }
    // Refused before the commit (in doubt, or the copy it waited for failed): the commit fails.
    this.state = 'left-out';
    this.failure = failure ?? new RillError('storage-error', 'not stored');
    this.decided();
  }
}

/**
 * Makes STOMP transactions atomic: a COMMIT's messages, over any partitions and workers, are all
 * stored or none, and a crash or a worker's death during COMMIT leaves them all stored once the
 * broker is back (see TransactionLog). Readers never see a message of a transaction that was not
 * committed, because no batch reaches a partition before the commit record is durable; across
 * partitions the parts become visible one after another (as Kafka's commit markers are written),
 * never some of them for good.
 */
export class TransactionCoordinator {
  private readonly log: TransactionLog;
  private nextId = 0;
  private closed = false;
  /** COMMITs being stored, and who waits for there to be none (shutdown). */
  private committing = 0;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    private readonly broker: TransactionBroker,
    private readonly logger: Logger,
    /** Commits the group offsets of transactions completed at start-up (none in tests without groups). */
    private readonly offsetRecovery?: OffsetRecovery,
    /** The transaction log's topic (the default: `__transaction_state`). */
    logTopic?: string,
  ) {
    this.log = new TransactionLog(broker, logTopic);
  }

  /** At start-up, before publishes and before deduplication reads the partitions: applies what was committed and not completed. */
  async recover(): Promise<void> {
    let unfinished: Awaited<ReturnType<TransactionLog['unfinished']>>;
    try {
      unfinished = await this.log.unfinished();
    } catch (error) {
      // As the offsets topic: a damaged log stops no start-up, and says what it costs.
      this.logger.error({ err: error }, 'the transaction log could not be read: transactions committed before a crash may not be completed');
      this.nextId = Date.now() * 1000;
      return;
    }
    const { transactions, highestId } = unfinished;
    // Ids only grow, even once retention has removed the log's older records.
    this.nextId = Math.max(highestId + 1, Date.now() * 1000);
    for (const transaction of transactions) {
      const completion = this.complete(transaction);
      const done = await Promise.race([
        completion.then(() => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), RECOVERY_PATIENCE_MS).unref()),
      ]);
      if (!done) {
        // A partition that cannot take it now (its worker failing again and again): start-up goes on, the completion too.
        this.logger.error(
          { transaction: transaction.id },
          'a transaction committed before a crash is not complete yet: it goes on in the background (resends of its messages may be stored twice until it is)',
        );
        completion.catch((error: Error) =>
          this.logger.error({ err: error, transaction: transaction.id }, 'a transaction committed before a crash could not be completed'),
        );
      }
    }
    if (transactions.length > 0) this.logger.info({ transactions: transactions.length }, 'transactions committed before a crash were completed');
  }

  /** Resolves once no COMMIT is being stored (at once if none is). */
  whenIdle(): Promise<void> {
    if (this.committing === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Commits a transaction's messages and group offsets, each message answered through its ticket:
   * a duplicate as such, the rest with their offsets once all are stored, or all with the failure
   * when none is. Resolves once the transaction is stored (offsets included), rejects when it is not.
   */
  commit(messages: readonly TransactionMessage[], tickets: readonly DeduplicatedTicket[], offsets: readonly TransactionalOffsets[] = []): Promise<void> {
    let undecided = messages.length;
    const entries: TransactionEntry[] = [];
    let outcome!: { resolve: () => void; reject: (error: RillError) => void };
    const stored = new Promise<void>((resolve, reject) => (outcome = { resolve, reject }));
    const decided = (): void => {
      if (--undecided === 0) void this.decidedAll(entries, offsets, outcome);
    };
    if (messages.length === 0) {
      void this.decidedAll(entries, offsets, outcome);
      return stored;
    }
    for (let i = 0; i < messages.length; i++) entries.push(new TransactionEntry(messages[i]!, tickets[i]!, decided));
    const { deduplication } = this.broker;
    // A messageID twice in one transaction: one message, the later copies its duplicates (waiting on
    // the first through the deduplicator would wait for this very COMMIT).
    const firsts = new Map<string, TransactionEntry>();
    for (const entry of entries) {
      const { message } = entry;
      if (message.messageIdGiven && deduplication.covers(message.topic)) {
        const key = `${message.topic.name}\u0000${message.messageId}`;
        const first = firsts.get(key);
        if (first !== undefined) {
          (first.followers ??= []).push(entry.ticket);
          entry.state = 'left-out';
          decided();
          continue;
        }
        firsts.set(key, entry);
      }
      const include = (_entry: TransactionEntry, recorder: AppendTicket): void => {
        entry.state = 'included';
        entry.recorder = recorder;
        decided();
      };
      if (message.messageIdGiven && deduplication.covers(message.topic)) {
        deduplication.submit(message.topic, message.partition, message.messageId, entry, entry, include, message.value?.length ?? 0);
      } else include(entry, entry);
    }
    return stored;
  }

  close(): void {
    this.closed = true;
  }

  private async complete(transaction: CommittedTransaction): Promise<void> {
    // The offsets first: the outputs are certain (the record holds them), and a partition's new
    // owner must not process the inputs again while they are being applied.
    const byGroup = new Map<string, GroupOffset[]>();
    for (const entry of transaction.offsets) {
      const list = byGroup.get(entry.group);
      if (list === undefined) byGroup.set(entry.group, [entry]);
      else list.push(entry);
    }
    const recovery = this.offsetRecovery;
    if (recovery !== undefined) {
      for (const [group, offsets] of byGroup) await this.retryDecided(transaction.id, 'offsets', () => recovery.commitForward(group, offsets));
    }
    await Promise.all(
      transaction.parts.map((part) =>
        this.apply(transaction.id, part, true).catch((error: unknown) => {
          if (!(error instanceof RillError) || error.code !== 'unknown-topic') throw error;
          this.logger.warn(
            { transaction: transaction.id, topic: part.topic, partition: part.partition },
            'a committed transaction wrote to a topic deleted since: that part is dropped',
          );
        }),
      ),
    );
    await this.log.complete(transaction.id);
  }

  private async decidedAll(
    entries: TransactionEntry[],
    offsets: readonly TransactionalOffsets[],
    outcome: { resolve: () => void; reject: (error: RillError) => void },
  ): Promise<void> {
    const included = entries.filter((entry) => entry.state === 'included');
    const refused = entries.find((entry) => entry.failure !== null);
    if (refused !== undefined) {
      const failure = new RillError(refused.failure!.code, `message "${refused.message.messageId}": ${refused.failure!.message}`);
      for (const entry of entries) {
        if (entry.failure === null) continue;
        entry.ticket.settle(-1, entry.failure);
        if (entry.followers !== null) for (const follower of entry.followers) follower.settle(-1, entry.failure);
      }
      for (const entry of included) entry.recorder!.settle(-1, failure);
      outcome.reject(failure);
      return;
    }
    if (included.length === 0 && offsets.length === 0) {
      outcome.resolve();
      return;
    }
    // The zombie fence, at the moment of decision: a committer whose partitions went to another
    // member since it read them commits nothing; from here new owners wait for the outcome.
    const fenced: TransactionalOffsets[] = [];
    const recorded: GroupOffset[] = [];
    try {
      await Promise.all(offsets.map((entry) => entry.ready()));
      for (const entry of offsets) {
        for (const { topic, partition, offset } of entry.fence()) recorded.push({ group: entry.group, topic, partition, offset });
        fenced.push(entry);
      }
    } catch (error) {
      for (const entry of fenced) entry.release();
      const failure = error instanceof RillError ? error : new RillError('internal', (error as Error).message);
      for (const entry of included) entry.recorder!.settle(-1, failure);
      outcome.reject(failure);
      return;
    }
    this.committing++;
    const progress = { decided: false };
    try {
      const stored = await this.store(
        included.map((entry) => entry.message),
        offsets,
        recorded,
        progress,
      );
      for (let i = 0; i < included.length; i++) included[i]!.recorder!.settle(stored[i]!, null);
      outcome.resolve();
    } catch (error) {
      const code = error instanceof RillError ? error.code : 'storage-error';
      // Shut down while applying a decided transaction: it is completed at the next start, so it
      // has not failed; its connection is closing and hears nothing more.
      if (error instanceof ShutDownError) {
        outcome.reject(new DecidedTransactionError(code, error.message));
        return;
      }
      // A plain error, never a WorkerStoppedError: the deduplicator must not think the messages in doubt.
      const failure = progress.decided ? new DecidedTransactionError(code, (error as Error).message) : new RillError(code, (error as Error).message);
      for (const entry of included) entry.recorder!.settle(-1, failure);
      outcome.reject(failure);
    } finally {
      for (const entry of offsets) entry.release();
      if (--this.committing === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Decides the transaction (its record durable in the log), applies it, completes it; resolves to each message's offset. */
  private async store(
    messages: TransactionMessage[],
    groupOffsets: readonly TransactionalOffsets[],
    recorded: GroupOffset[],
    progress: { decided: boolean },
  ): Promise<number[]> {
    const id = this.nextId++;
    const byPartition = new Map<string, { topic: Topic; partition: number; indexes: number[]; builder: RecordBatchBuilder }>();
    messages.forEach((message, index) => {
      const key = `${message.topic.name}\u0000${message.partition}`;
      let group = byPartition.get(key);
      if (group === undefined) {
        group = { topic: message.topic, partition: message.partition, indexes: [], builder: new RecordBatchBuilder(4096) };
        byPartition.set(key, group);
      }
      group.indexes.push(index);
      group.builder.append(message.timestamp, message.key, message.messageId, message.headers, message.value);
    });
    const groups = [...byPartition.values()];
    // Where each partition ends now: the batch, once applied, is after it (a search for it starts there).
    const ends = await Promise.all(
      groups.map(({ topic, partition }) =>
        this.broker.offsets(topic, partition).then(
          ({ logEndOffset }) => Math.max(logEndOffset, this.broker.storedEnd(topic, partition)),
          () => this.broker.storedEnd(topic, partition),
        ),
      ),
    );
    const parts: TransactionPart[] = groups.map(({ topic, partition, indexes, builder }, p) => {
      const batch = builder.finish();
      setBatchProducer(batch, id, 0, 0);
      return { topic: topic.name, partition, from: ends[p]!, records: indexes.length, batch };
    });
    // The decision: from here the transaction is applied, even across a crash.
    await this.decide({ id, parts, offsets: recorded });
    progress.decided = true;
    for (const entry of groupOffsets) entry.decided();
    if (failpointsActive) transactionFailpoint('kill-after-log');
    const offsets: number[] = new Array(messages.length);
    const applyPart = async (p: number): Promise<void> => {
      const base = await this.apply(id, parts[p]!, false);
      groups[p]!.indexes.forEach((index, i) => {
        offsets[index] = base + i;
      });
    };
    if (failpointsActive && parts.length > 0) {
      // Under test: the first partition alone, so that a kill after it leaves the others without theirs.
      await applyPart(0);
      transactionFailpoint('kill-after-first-partition');
      await Promise.all(parts.slice(1).map((_, p) => applyPart(p + 1)));
    } else await Promise.all(parts.map((_, p) => applyPart(p)));
    // The input's offsets after the output: a crash in between leaves them to recovery, never the reverse.
    for (const entry of groupOffsets) await this.retryDecided(id, 'offsets', () => entry.write());
    void this.log
      .complete(id)
      .catch((error: Error) =>
        this.logger.warn({ err: error, transaction: id }, 'could not record a transaction complete: it is checked again at the next start'),
      );
    return offsets;
  }

  /**
   * Writes the commit record. A write that failed for sure means the transaction is not committed;
   * one whose worker stopped before answering may have been stored, so it is written again (the
   * same record, applied once however often it is in the log) until it is known to be: then the
   * transaction is committed and must not be reported as failed.
   */
  private async decide(transaction: CommittedTransaction): Promise<void> {
    for (let attempt = 0, ambiguous = false; ; attempt++) {
      try {
        await this.log.commit(transaction);
        return;
      } catch (error) {
        ambiguous ||= error instanceof WorkerStoppedError;
        if (!ambiguous)
          throw new RillError(error instanceof RillError ? error.code : 'storage-error', `the transaction could not be committed: ${(error as Error).message}`);
        if (this.closed) throw new ShutDownError();
        if (attempt === 0)
          this.logger.warn({ err: error, transaction: transaction.id }, 'the transaction log stopped while committing; writing the commit again');
        await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt)).unref());
      }
    }
  }

  /**
   * Puts a committed part into its partition, once: when an attempt may have stored it (a retry, or
   * recovery), the partition is searched for the batch first, by its producer id. A committed
   * transaction must be applied, so failures are retried (a worker restarting, a full disk) until
   * the broker closes.
   */
  private async apply(id: number, part: TransactionPart, maybeStored: boolean): Promise<number> {
    const topic = this.broker.topic(part.topic);
    const deleted = () => new RillError('unknown-topic', `transaction ${id}: topic ${part.topic} was deleted`);
    if (topic === undefined) throw deleted();
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new ShutDownError();
      // Deleted meanwhile (perhaps made again under its name): the part went with it, never into the new one.
      if (topic.deleted) throw deleted();
      try {
        if (maybeStored || attempt > 0) {
          const found = await this.findApplied(topic, part.partition, part.from, id);
          if (found >= 0) return found;
        }
        return await this.broker.appendBatch(topic, part.partition, part.batch, part.records);
      } catch (error) {
        if (attempt === 0)
          this.logger.warn(
            { err: error, transaction: id, topic: part.topic, partition: part.partition },
            'a committed transaction could not be applied yet; retrying',
          );
        await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt)).unref());
      }
    }
  }

  /** Runs a step of a decided transaction until it succeeds (a worker restarting, a full disk), or the broker closes. */
  private async retryDecided(id: number, step: string, run: () => Promise<void>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new ShutDownError();
      try {
        await run();
        return;
      } catch (error) {
        if (attempt === 0) this.logger.warn({ err: error, transaction: id, step }, 'a step of a committed transaction failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt)).unref());
      }
    }
  }

  /** The base offset of the transaction's batch in the partition, searched from `from` on; -1 if it is not there. */
  private async findApplied(topic: Topic, partition: number, from: number, id: number): Promise<number> {
    const { logStartOffset, logEndOffset } = await this.broker.offsets(topic, partition);
    let offset = Math.max(from, logStartOffset);
    while (offset < logEndOffset) {
      const result = await this.broker.read(topic, partition, offset, 1024 * 1024);
      if (result.failure !== undefined) throw new RillError('storage-error', result.failure.message);
      if (result.batches === null) return -1;
      const batches = result.batches;
      let position = 0;
      let next = offset;
      while (position + BATCH_HEADER_BYTES <= batches.length) {
        const info = readBatchInfo(batches, position);
        if (info.size < BATCH_HEADER_BYTES || position + info.size > batches.length) break;
        if (readBatchProducer(batches, position).producerId === id) return info.baseOffset;
        next = info.nextOffset;
        position += info.size;
      }
      if (next <= offset) return -1;
      offset = next;
    }
    return -1;
  }
}
