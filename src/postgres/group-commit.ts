import type { BatchTable, PendingBatch } from './batch-table.js';
import { isConnectionLost } from './connection.js';

interface Waiting {
  batches: PendingBatch[];
  data: Buffer[];
  bytes: number;
  resolve: (offsets: number[]) => void;
  reject: (error: unknown) => void;
}

/**
 * What the group commit does with the connection of a statement it gave up on: `cut` ends it (the
 * database may be gone without a word, its host dead: TCP would wait many minutes for an answer),
 * and `back` resolves once the database answers again with none of this node's statements from
 * before still running there (the one cut may still be: it could commit after what follows it).
 */
export interface GivenUpConnection {
  cut(): void;
  back(): Promise<void>;
}

/** The database did not answer an append statement in time: it may still commit it. */
export class AppendTimeoutError extends Error {
  override readonly name = 'AppendTimeoutError';
}

/** An append refused before it was sent, while a statement this node gave up waiting for may still run on the server: nothing was written. */
export class AppendsHeldError extends Error {
  override readonly name = 'AppendsHeldError';
}

/**
 * One append statement in flight per node: the turns that come while it runs wait, then go
 * together as the next statement (group commit). That keeps each partition's batches in the
 * order the front sent them (two statements on two connections would race for the partition's
 * row lock), and makes one transaction carry as many batches as arrived meanwhile.
 *
 * A statement the database has not answered within `timeoutMs` is given up on: its turns are told
 * that it may have been stored, and the turns waiting behind it are refused, as are new ones (a
 * statement queued on a connection looking for a primary would otherwise wait, unanswered, for as
 * long as there is none). Its connection is cut (`GivenUpConnection`), and nothing goes out after
 * it until the database says it no longer runs there: it may still commit, in its place.
 */
export class GroupCommit {
  private readonly queue: Waiting[] = [];
  private running = false;
  /** New turns are refused: a statement was given up on, and may still run on the server. */
  private abandoned = false;
  /** The statement given up on has not failed or answered yet. */
  private unanswered = false;

  constructor(
    private readonly table: Pick<BatchTable, 'append'>,
    private readonly timeoutMs: number,
    /** How a statement given up on ended, when it failed (its turns were answered long before). */
    private readonly onLateFailure: (error: unknown) => void,
    private readonly givenUp: GivenUpConnection = { cut: () => {}, back: () => Promise.resolve() },
  ) {}

  /** Whether a statement given up on is still unanswered: whoever reads to learn what it stored must wait. */
  get holding(): boolean {
    return this.unanswered;
  }

  /** Appends one turn's batches (`position` within `data`, end to end); resolves to their base offsets (-1: no such partition). */
  submit(batches: PendingBatch[], data: Buffer[], bytes: number): Promise<number[]> {
    if (this.abandoned) return Promise.reject(this.held());
    return new Promise((resolve, reject) => {
      this.queue.push({ batches, data, bytes, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private held(): AppendsHeldError {
    return new AppendsHeldError(
      `an append of this node the database did not answer within ${this.timeoutMs} ms may still run there: nothing was written; retry`,
    );
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0) {
      const group = this.queue.splice(0);
      let timer: NodeJS.Timeout | undefined;
      try {
        const batches: PendingBatch[] = [];
        let shift = 0;
        for (const waiting of group) {
          for (const batch of waiting.batches) batches.push({ ...batch, position: batch.position + shift });
          shift += waiting.bytes;
        }
        const pack = Buffer.concat(
          group.flatMap((waiting) => waiting.data),
          shift,
        );
        const statement = this.table.append(batches, pack, Date.now());
        const late = new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), this.timeoutMs);
        });
        const offsets = await Promise.race([statement, late]);
        if (offsets === null) {
          await this.abandon(group, statement);
          continue;
        }
        let first = 0;
        for (const waiting of group) {
          waiting.resolve(offsets.slice(first, first + waiting.batches.length));
          first += waiting.batches.length;
        }
      } catch (error) {
        for (const waiting of group) waiting.reject(error);
      } finally {
        clearTimeout(timer);
      }
    }
    this.running = false;
  }

  private async abandon(group: Waiting[], statement: Promise<number[]>): Promise<void> {
    this.abandoned = true;
    this.unanswered = true;
    const unknown = new AppendTimeoutError(`the database did not answer an append within ${this.timeoutMs} ms`);
    for (const waiting of group) waiting.reject(unknown);
    for (const waiting of this.queue.splice(0)) waiting.reject(this.held());
    this.givenUp.cut();
    let lost = false;
    try {
      await statement;
    } catch (error) {
      lost = isConnectionLost(error);
      this.onLateFailure(lost ? new AppendTimeoutError(`${unknown.message}: its connection was cut`, { cause: error }) : error);
    } finally {
      this.unanswered = false;
    }
    try {
      // Cut (or lost), it may still run on the server, and commit after what would follow it.
      if (lost) await this.givenUp.back();
    } finally {
      this.abandoned = false;
    }
  }
}
