import { z } from 'zod';
import { type Broker, forEachRecord, type Topic } from '../broker/index.js';
import { RillError } from '../errors/index.js';

/** The internal topic holding every transaction's commit record and its completion. */
const TRANSACTION_TOPIC = '__transaction_state';

/** One partition's share of a transaction: its batch, and the partition's end when the transaction committed. */
export interface TransactionPart {
  topic: string;
  partition: number;
  /** The partition's end as last seen stored before the commit: the batch, once applied, is at or after it. */
  from: number;
  records: number;
  batch: Buffer;
}

/** A consumer group's committed offset (the next offset to read) made part of a transaction. */
export interface GroupOffset {
  group: string;
  topic: string;
  partition: number;
  offset: number;
}

/** A committed transaction: decided, and to be applied to every partition it names, then its groups' offsets committed. */
export interface CommittedTransaction {
  id: number;
  parts: TransactionPart[];
  offsets: GroupOffset[];
}

const headSchema = z.object({
  v: z.literal(1),
  id: z.number().int(),
  parts: z.array(
    z.object({
      topic: z.string(),
      partition: z.number().int().min(0),
      from: z.number().int().min(0),
      records: z.number().int().min(1),
      size: z.number().int().min(0),
    }),
  ),
  offsets: z.array(z.object({ group: z.string(), topic: z.string(), partition: z.number().int().min(0), offset: z.number().int().min(0) })).optional(),
});

/**
 * The transaction log (Kafka's transaction state log, as a redo log): a COMMIT is decided when its
 * record, holding every batch of the transaction and the consumer-group offsets it commits, is
 * durable here; the batches are then appended to their partitions, the offsets committed, and a
 * completion record says so. At start-up a transaction committed and
 * not completed is applied again (RECOVERY in TransactionCoordinator), so a crash in between
 * loses none of it and, since no batch reaches a partition before the decision, no reader ever
 * sees a transaction that was not committed.
 */
export class TransactionLog {
  /** Made by the first COMMIT: a broker whose clients use no transactions has none. */
  private topic: Topic | undefined;

  constructor(
    private readonly broker: Pick<Broker, 'topics' | 'topic' | 'appendAndWait' | 'offsets' | 'read'>,
    /** In cluster mode each node keeps its own (`__transaction_state.<nodeId>`): it completes its own transactions, never another live node's. */
    private readonly topicName = TRANSACTION_TOPIC,
  ) {
    this.topic = broker.topic(topicName);
  }

  private get logTopic(): Topic {
    this.topic ??= this.broker.topics.internal(this.topicName, 1);
    return this.topic;
  }

  /** Makes the transaction's commit durable: from here on it will be applied, whatever happens. */
  async commit(transaction: CommittedTransaction): Promise<void> {
    const head = Buffer.from(
      JSON.stringify({
        v: 1,
        id: transaction.id,
        parts: transaction.parts.map(({ topic, partition, from, records, batch }) => ({ topic, partition, from, records, size: batch.length })),
        offsets: transaction.offsets,
      }),
    );
    const length = Buffer.alloc(4);
    length.writeUInt32BE(head.length);
    const value = Buffer.concat([length, head, ...transaction.parts.map((part) => part.batch)]);
    await this.broker.appendAndWait(this.logTopic, 0, Date.now(), `commit:${transaction.id}`, null, null, value);
  }

  /** Every part is in its partition: nothing to apply again at the next start. */
  async complete(id: number): Promise<void> {
    await this.broker.appendAndWait(this.logTopic, 0, Date.now(), `complete:${id}`, null, null, Buffer.alloc(0));
  }

  /** Reads the whole log: the transactions committed and not completed, and the highest id seen. */
  async unfinished(): Promise<{ transactions: CommittedTransaction[]; highestId: number }> {
    const open = new Map<number, CommittedTransaction>();
    let highestId = 0;
    const topic = this.topic;
    if (topic === undefined) return { transactions: [], highestId };
    const { logStartOffset, logEndOffset } = await this.broker.offsets(topic, 0);
    let offset = logStartOffset;
    while (offset < logEndOffset) {
      const result = await this.broker.read(topic, 0, offset, 16 * 1024 * 1024);
      if (result.failure !== undefined)
        throw new RillError('storage-error', `the transaction log cannot be read from offset ${offset}: ${result.failure.message}`);
      if (result.batches === null) break;
      const next = forEachRecord(result.batches, offset, (record) => {
        const [kind, idText] = (record.key ?? '').split(':');
        const id = Number(idText);
        if (!Number.isSafeInteger(id)) return;
        if (id > highestId) highestId = id;
        if (kind === 'complete') open.delete(id);
        else if (kind === 'commit') open.set(id, decodeCommit(record.value));
      });
      if (next <= offset) break;
      offset = next;
    }
    return { transactions: [...open.values()], highestId };
  }
}

function decodeCommit(value: Buffer): CommittedTransaction {
  const headLength = value.readUInt32BE(0);
  const head = headSchema.parse(JSON.parse(value.toString('utf8', 4, 4 + headLength)));
  let position = 4 + headLength;
  const parts = head.parts.map(({ topic, partition, from, records, size }) => {
    const batch = Buffer.from(value.subarray(position, position + size));
    position += size;
    return { topic, partition, from, records, batch };
  });
  return { id: head.id, parts, offsets: head.offsets ?? [] };
}
