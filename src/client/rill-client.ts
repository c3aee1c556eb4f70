import { Connection } from './connection.js';
import type { RillError } from './errors.js';
import { GroupSubscription, type GroupSubscribeOptions } from './group-subscription.js';
import { type ClientOptions, type ConnectionState, type Settings, settingsOf } from './options.js';
import { Producer, type PublishOptions, type PublishResult } from './producer.js';
import { PullConsumer, type PullConsumerOptions } from './pull-consumer.js';
import { Requests } from './requests.js';
import type { Subscription } from './subscription.js';
import { Tail, type TailOptions } from './tail.js';

/**
 * A Rill client over STOMP on WebSocket, for browsers and Node. It reconnects by itself after the
 * connection drops, subscribes again, and sends again (under the same messageIDs) what the broker
 * had not acknowledged, so each message is stored once.
 */
export class RillClient {
  private readonly settings: Settings;
  private readonly connection: Connection;
  private readonly producer: Producer;
  private readonly requests: Requests;

  constructor(options: ClientOptions) {
    this.settings = settingsOf(options);
    this.connection = new Connection(this.settings);
    this.producer = new Producer(this.connection, this.settings);
    this.requests = new Requests(this.connection);
  }

  /** Connects; rejects with what stopped the first attempt (`connection-lost` for an unreachable broker, `unauthenticated`, ...). */
  connect(): Promise<void> {
    return this.connection.open();
  }

  get state(): ConnectionState {
    return this.connection.state;
  }

  /** The broker's id of the current connection (what `DELETE /v1/connections/<session>` names); null before the first. */
  get session(): string | null {
    return this.connection.session;
  }

  /**
   * Publishes `value` (any JSON value) to `topic` as the canonical JSON body, and resolves to
   * where it was stored once the broker has acknowledged it. Waits for room while maxInFlight
   * publishes are outstanding. Rejects with a RillError: a refusal (`too-large`, `forbidden`,
   * `invalid-message`, ...) at once; a retriable failure once maxPublishAttempts are spent.
   */
  publish(topic: string, value: unknown, options?: PublishOptions): Promise<PublishResult> {
    return this.producer.publish(topic, value, options);
  }

  /** Joins a consumer group and has its messages pushed; resolves once the member has joined. */
  subscribe(options: GroupSubscribeOptions): Promise<Subscription> {
    return new GroupSubscription(this.connection, this.settings, options).start();
  }

  /** Reads a topic's log as it grows, from `from`; resolves once the broker has started the subscription. */
  tail(topic: string, options: TailOptions): Promise<Subscription> {
    return new Tail(this.connection, this.settings, topic, options).start();
  }

  /** A consumer group member that pulls batches and commits them itself; it joins on its first pull. */
  pullConsumer(options: PullConsumerOptions): PullConsumer {
    return new PullConsumer(this.requests, options);
  }

  /**
   * Replaces the connection's token before it expires (SEND `/session/token`); once the broker has
   * taken it, later connections log in with it too. Rejects with the broker's refusal (a token for
   * another user: `forbidden`), after which the broker closes the connection and the client
   * reconnects with the token it had.
   */
  async updateToken(token: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const adopt = (): void => {
        this.connection.setPasscode(token);
        resolve();
      };
      // Without a connection to check it on, the next CONNECT checks it.
      const error = (failure: RillError): void => (failure.code === 'connection-lost' ? adopt() : reject(failure));
      if (!this.connection.send('/session/token', {}, token, { receipt: adopt, error })) adopt();
    });
  }

  /**
   * Disconnects: the broker answers once every message published before is stored, so the
   * publishes in flight settle first; anything still waiting then fails with `client-closed`, and
   * group members leave their groups at once.
   */
  disconnect(): Promise<void> {
    return this.connection.close();
  }
}

/** Creates a client and connects it. */
export async function connect(options: ClientOptions): Promise<RillClient> {
  const client = new RillClient(options);
  await client.connect();
  return client;
}
