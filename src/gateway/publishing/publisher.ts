import {
  KeylessPartitioner,
  type AppendTicket,
  type DeduplicatedTicket,
  type CreationQuota,
  type Broker,
  type KeylessPartitioning,
} from '../../broker/index.js';
import type { TransactionalOffsets, TransactionCoordinator } from '../../transactions/index.js';
import { RillError } from '../../errors/index.js';
import type { FrameHeaders } from '../../protocol/stomp/index.js';
import type { Producer } from './producer.js';
import { preparePublish, type PublishAuthorizer, type PublishRequest } from './publish-request.js';
import { PublishTicket, type ReceiptCountdown } from './publish-ticket.js';

/**
 * The publish path's router stage: a SEND's topic, key, messageID and partition are worked out
 * (validated, auto-creating the topic by the registry's policy), then the record goes to the
 * broker with a ticket that answers the producer once storage has.
 */
export class Publisher {
  private readonly keyless: KeylessPartitioner;

  constructor(
    private readonly broker: Pick<Broker, 'topics' | 'append' | 'deduplication'>,
    keylessPartitioning: KeylessPartitioning = 'sticky',
    /** Commits transactions atomically; without one (unit tests of the frames), a COMMIT publishes its messages one by one. */
    private readonly transactions?: TransactionCoordinator,
    /** `limits.maxDelayMs`. */
    private readonly maxDelayMs?: number,
  ) {
    this.keyless = new KeylessPartitioner(keylessPartitioning);
  }

  /**
   * Throws PublishError with a reason the client can act on. `quota`: the connection's allowance
   * for creating topics by naming them (limits.autoCreatePerMinute); `authorize`: the publisher's rights.
   */
  prepare(
    topic: string,
    headers: FrameHeaders,
    body: Buffer,
    fallbackMessageId: () => string,
    quota?: CreationQuota,
    authorize?: PublishAuthorizer,
  ): PublishRequest {
    return preparePublish(this.broker.topics, this.keyless, topic, headers, body, fallbackMessageId, quota, this.maxDelayMs, authorize);
  }

  /**
   * Hands the record to the broker. `place` is the frame's place in the producer's order of
   * answers; `receipt`, whether the SEND asked for a RECEIPT; `owedBytes`, the producer's guess of
   * what its answers will take, handed back when it settles. (A COMMIT's: publishTransaction.)
   */
  publish(producer: Producer, request: PublishRequest, place: number, receipt: boolean, owedBytes: number): void {
    const { topic, partition, messageId, timestamp } = request;
    const ticket = new PublishTicket(producer, topic.name, partition, messageId, timestamp, place, receipt, null, owedBytes);
    const { deduplication } = this.broker;
    // A messageID the broker made up cannot come again: only the producer's own are looked up.
    if (request.messageIdGiven && deduplication.covers(topic))
      deduplication.submit(topic, partition, messageId, ticket, request, this.store, request.value?.length ?? 0);
    else this.store(request, ticket);
  }

  /**
   * A COMMIT's messages, all stored or none (the TransactionCoordinator); each answers the producer
   * as a publish does, and the COMMIT's RECEIPT comes through `countdown` once all are stored.
   */
  publishTransaction(
    producer: Producer,
    requests: readonly PublishRequest[],
    countdown: ReceiptCountdown,
    owedBytes: readonly number[],
    offsets: readonly TransactionalOffsets[] = [],
  ): Promise<void> {
    const tickets = requests.map(
      ({ topic, partition, messageId, timestamp }, i) =>
        new PublishTicket(producer, topic.name, partition, messageId, timestamp, countdown.place, false, countdown, owedBytes[i]!),
    );
    if (this.transactions === undefined) {
      for (let i = 0; i < requests.length; i++) this.store(requests[i]!, tickets[i]!);
      return Promise.resolve();
    }
    return this.transactions.commit(requests, tickets, offsets);
  }

  /** A request's transaction (not a connection's): its messages answered through `tickets`. */
  transact(requests: readonly PublishRequest[], tickets: readonly DeduplicatedTicket[], offsets: readonly TransactionalOffsets[]): Promise<void> {
    if (this.transactions === undefined) return Promise.reject(new RillError('internal', 'transactions are not available'));
    return this.transactions.commit(requests, tickets, offsets);
  }

  private readonly store = (request: PublishRequest, ticket: AppendTicket): void => {
    this.broker.append(request.topic, request.partition, request.timestamp, request.key, request.messageId, request.headers, request.value, ticket);
  };
}
