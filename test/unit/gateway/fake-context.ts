import { CreationQuota, TopicTraffic, type Broker, type Topic } from '../../../src/broker/index.js';
import { parseConfig } from '../../../src/config/index.js';
import type { GroupCoordinator } from '../../../src/coordinator/index.js';
import { RillError } from '../../../src/errors/index.js';
import { createLogger } from '../../../src/logging/index.js';
import type { EscapeMode, Frame, HeaderInput } from '../../../src/protocol/stomp/index.js';
import { publishAuthorizer } from '../../../src/gateway/access.js';
import { Publisher, type PublishAuthorizer, type PublishRequest, type ReceiptCountdown } from '../../../src/gateway/publishing/index.js';
import { anonymousPrincipal, PrincipalRights, Security, type Principal } from '../../../src/security/index.js';
import type { CommandContext, LaterAnswer, PartitionReader } from '../../../src/gateway/stomp/command-context.js';
import type { DeliveryChannel } from '../../../src/gateway/stomp/delivery-channel.js';
import { SubscriptionRegistry } from '../../../src/gateway/stomp/subscription-registry.js';
import { Transactions } from '../../../src/gateway/stomp/transactions.js';
import { testTopic } from '../../helpers/topics.js';

export interface SentFrame {
  command: string;
  headers: HeaderInput;
  body: string;
}

/** A topic registry over fixed topics: `auto` creates nothing, so unknown names are refused. */
function fakeTopics(topics: Topic[], autoCreate: boolean) {
  const byName = new Map(topics.map((t) => [t.name, t]));
  return {
    get: (name: string): Topic | undefined => byName.get(name),
    resolve(name: string): Topic {
      const topic = byName.get(name);
      if (topic !== undefined) return topic;
      if (!/^[A-Za-z0-9._-]{1,249}$/.test(name) || name.startsWith('__')) throw new RillError('invalid-destination', `invalid topic name "${name}"`);
      if (!autoCreate) throw new RillError('unknown-topic', `topic "${name}" does not exist and auto-create is off`);
      const created = testTopic(name, 2, [100, 101]);
      byName.set(name, created);
      return created;
    },
  };
}

/**
 * A CommandContext with no socket: records what a handler sends, fails, publishes; the broker
 * behind the publisher records appends instead of storing them.
 */
export class FakeContext implements CommandContext {
  readonly sessionId = 'test-session';
  readonly topicQuota = new CreationQuota(600);
  version: EscapeMode = '1.2';
  isConnected = true;
  readonly frames: SentFrame[] = [];
  readonly receipts: string[] = [];
  failure: { error: RillError; receipt: string | null | undefined; details?: { body?: string; headers?: HeaderInput } } | null = null;
  readonly published: Array<{ request: PublishRequest; receipt: string | null; countdown: ReceiptCountdown | null }> = [];
  readonly appended: Array<{ topic: string; partition: number; key: string | null; messageId: string | null }> = [];
  connection: { version: EscapeMode; headers: HeaderInput; outgoingMs: number; incomingMs: number } | null = null;
  disconnected: string | null | undefined = undefined;
  readonly subscriptions = new SubscriptionRegistry();
  readonly transactions: Transactions;
  readonly closeHandlers = new Set<(clean: boolean) => void>();
  private messageCounter = 0;
  readonly services: CommandContext['services'];
  readonly channel: DeliveryChannel;
  readonly remoteAddress = '127.0.0.1:50000';
  readonly certificateSubject = null;
  readonly rights: PrincipalRights;
  readonly authorizePublish: PublishAuthorizer;

  constructor(
    options: {
      topics?: Topic[];
      autoCreate?: boolean;
      config?: Parameters<typeof parseConfig>[0];
      log?: Partial<PartitionReader>;
      coordinator?: Partial<GroupCoordinator>;
    } = {},
  ) {
    const config = parseConfig(options.config ?? {});
    const topics = fakeTopics(options.topics ?? [testTopic('orders', 4)], options.autoCreate ?? true);
    const broker = {
      topics,
      append: (topic: Topic, partition: number, _timestamp: number, key: string | null, messageId: string | null) => {
        this.appended.push({ topic: topic.name, partition, key, messageId });
      },
      // These unit tests look at what is handed to the broker: no window between.
      deduplication: { covers: () => false },
    } as unknown as Pick<Broker, 'topics' | 'append' | 'deduplication'>;
    this.transactions = new Transactions(config.stomp.maxTransactionFrames);
    this.services = {
      stomp: config.stomp,
      serverName: 'rill/test',
      publisher: new Publisher(broker),
      topics,
      log: { delivered: new TopicTraffic(), ...options.log } as PartitionReader,
      coordinator: (options.coordinator ?? {}) as GroupCoordinator,
      logger: createLogger('silent'),
      security: new Security(config.auth, createLogger('silent')),
      connectionHighWaterBytes: config.limits.connectionHighWaterBytes,
      autoCreatePerMinute: config.limits.autoCreatePerMinute,
    };
    this.rights = new PrincipalRights(this.services.security, anonymousPrincipal(), this.remoteAddress);
    this.authorizePublish = publishAuthorizer(this.rights, topics);
    const context = this;
    this.channel = {
      sessionId: this.sessionId,
      get version() {
        return context.version;
      },
      get open() {
        return context.isConnected;
      },
      get writable() {
        return context.isConnected;
      },
      sendFrame: (command, headers, body) => this.frames.push({ command, headers, body: body === undefined ? '' : body.toString() }),
      sendBytes: (frame) => this.frames.push({ command: frame.toString('utf8').split('\n')[0]!, headers: {}, body: frame.toString('utf8') }),
      cork: () => {},
      uncork: () => {},
    };
  }

  receipt(receipt: string | null | undefined): void {
    if (receipt !== undefined && receipt !== null) this.receipts.push(receipt);
  }

  fail(error: RillError, receipt?: string | null, details?: { body?: string; headers?: HeaderInput }): void {
    this.failure ??= { error, receipt, details };
    this.isConnected = false;
  }

  /** Answers later at once into `receipts` and `failure`: the fake keeps no order of answers (the session's AnswerQueue does). */
  later(receipt: string | null | undefined): LaterAnswer {
    return { place: 0, receipt: () => this.receipt(receipt), fail: (error) => this.fail(error, receipt) };
  }

  connected(version: EscapeMode, headers: HeaderInput, outgoingMs: number, incomingMs: number, principal: Principal, _generation: number): void {
    this.connection = { version, headers, outgoingMs, incomingMs };
    this.rights.replace(principal);
    this.version = version;
    this.isConnected = true;
  }

  /** Credentials are checked at once here (authentication is off unless the config turns it on). */
  holdFrames(work: Promise<void>): void {
    void work;
  }

  renewPrincipal(principal: Principal): void {
    this.rights.replace(principal);
  }

  publish(request: PublishRequest, receipt: string | null): void {
    this.published.push({ request, receipt, countdown: null });
  }

  commitTransaction(requests: readonly PublishRequest[], countdown: ReceiptCountdown): Promise<void> {
    for (const request of requests) this.published.push({ request, receipt: null, countdown });
    return Promise.resolve();
  }

  disconnect(receipt: string | null): void {
    this.disconnected = receipt;
  }

  nextMessageId(): string {
    return `${this.sessionId}-${++this.messageCounter}`;
  }

  onClose(release: (clean: boolean) => void): () => void {
    this.closeHandlers.add(release);
    return () => this.closeHandlers.delete(release);
  }
}

export function frame(command: string, headers: Record<string, string> = {}, body = ''): Frame {
  return { command, headers, body: Buffer.from(body) };
}
