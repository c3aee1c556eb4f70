import { RillError } from '../errors/index.js';
import type { CommittedRecordRef, Member } from './group.js';
import type { OffsetStore } from './offset-store.js';

/**
 * Where a transaction's offsets come from: given (a pull consumer names them), or worked out when
 * the transaction is decided (a push subscription's ACKs; see PushDeliveries.inTransaction).
 */
export interface TransactionOffsetSource {
  offsets(): CommittedRecordRef[];
  /** Resolves when the offsets may be worked out (earlier transactions of the same partitions are decided). */
  ready?(): Promise<void>;
  /** The transaction's record is durable. */
  decided?(): void;
  /** The committer's own check (a push subscription: the messages are still its to settle); throws when not. */
  stillHeld?(): void;
}

/**
 * A member's offset commits made part of a transaction (Kafka's sendOffsetsToTransaction): the
 * transaction coordinator fences them when it decides (a member that lost a partition since it
 * read it is a zombie and commits nothing), holds them pending while the transaction is stored,
 * so that a new owner of the partition waits for the outcome rather than reading an offset about
 * to move, and writes them once the transaction's messages are stored.
 */
export class TransactionalOffsetCommit {
  private releaseHold: (() => void) | null = null;
  private fenced: CommittedRecordRef[] = [];

  constructor(
    private readonly member: Member,
    private readonly source: TransactionOffsetSource,
    private readonly store: OffsetStore,
    /** The generation the committer names (pull consumers), if any. */
    private readonly generation: number | undefined,
  ) {}

  get group(): string {
    return this.member.group.name;
  }

  ready(): Promise<void> {
    return this.source.ready?.() ?? Promise.resolve();
  }

  /** Checks that the member still owns every partition, and holds them pending; returns the offsets to record. */
  fence(): CommittedRecordRef[] {
    const { member } = this;
    if (member.removed)
      throw new RillError('not-owner', `consumer "${member.name}" left group "${member.group.name}": its partitions are another member's now`);
    member.group.fence(this.generation);
    this.source.stillHeld?.();
    const offsets = this.source.offsets();
    for (const entry of offsets) {
      if (!member.owns(entry)) {
        throw new RillError(
          'not-owner',
          `consumer "${member.name}" does not own ${entry.topic}/${entry.partition} (group "${member.group.name}" is at generation ${member.group.generation})`,
        );
      }
    }
    this.releaseHold = this.store.hold(member.group.name, offsets);
    this.fenced = offsets;
    return offsets;
  }

  decided(): void {
    this.source.decided?.();
  }

  /** Never moves an offset back: transactions decided one after another may be written in another order. */
  write(): Promise<void> {
    return this.store.commitForward(this.member.group.name, this.fenced);
  }

  release(): void {
    this.releaseHold?.();
    this.releaseHold = null;
  }
}
