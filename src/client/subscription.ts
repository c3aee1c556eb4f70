import type { IMessage } from '@stomp/stompjs';
import type { Connection, ConnectionUser } from './connection.js';
import { handlerFailed, RillError } from './errors.js';
import type { Settings } from './options.js';

/** A subscription the client keeps up across reconnects until unsubscribe(). */
export interface Subscription {
  /** Ends it; a group member leaves the group at once (its partitions go to the others). */
  unsubscribe(): Promise<void>;
}

/**
 * What group subscriptions and tails share: they SUBSCRIBE again on every new connection (the
 * broker forgets a connection's subscriptions with it), the promise of starting settles with the
 * first SUBSCRIBE's answer, and a refusal after that ends them (reported through onError).
 */
export abstract class LiveSubscription implements ConnectionUser, Subscription {
  protected active = true;
  /** The STOMP subscriptions on the current connection. */
  private stompIds: string[] = [];
  private starting: { resolve: () => void; reject: (error: RillError) => void } | null = null;
  private forget: () => void = () => {};

  constructor(
    protected readonly connection: Connection,
    protected readonly settings: Settings,
    /** What it is, for error messages: `group subscription g/orders`. */
    protected readonly description: string,
  ) {}

  /** Subscribes; resolves once the broker confirms (for a group: once the member has joined). */
  start(): Promise<Subscription> {
    return new Promise((resolve, reject) => {
      this.starting = { resolve: () => resolve(this), reject };
      this.forget = this.connection.use(this);
      if (this.connection.connected) this.connected(this.connection.epoch);
      // A client that has stopped (or stops before connecting again) fails it.
      this.connection.whenConnected().catch((error: RillError) => this.closed(error));
    });
  }

  connected(epoch: number): void {
    if (!this.active) return;
    this.stompIds = [];
    this.subscribeOn(epoch);
  }

  disconnected(): void {
    this.stompIds = [];
  }

  closed(reason: RillError): void {
    this.end();
    this.starting?.reject(reason);
    this.starting = null;
  }

  async unsubscribe(): Promise<void> {
    if (!this.active) return;
    this.end();
    const ids = this.stompIds.splice(0);
    // With a receipt: once it comes, a group member has left.
    await Promise.all(
      ids.map((id) => new Promise<void>((resolve) => this.connection.unsubscribe(id, { receipt: resolve, error: () => resolve() }) || resolve())),
    );
  }

  /** SUBSCRIBEs on connection `epoch`, through subscribe(). */
  protected abstract subscribeOn(epoch: number): void;

  protected subscribe(destination: string, headers: Record<string, string>, onMessage: (frame: IMessage) => void): void {
    const id = this.connection.subscribe(destination, headers, onMessage, {
      receipt: () => {
        this.starting?.resolve();
        this.starting = null;
      },
      error: (error) => this.refused(error),
    });
    if (id !== null) this.stompIds.push(id);
  }

  /** Hands a message to the application; a handler that throws or rejects is reported, and `failed` runs. */
  protected handOver<M>(handler: (message: M) => void | Promise<void>, message: M, failed: () => void = () => {}): void {
    const fail = (error: unknown): void => {
      failed();
      this.settings.onError(handlerFailed(this.description, error));
    };
    try {
      const outcome: unknown = handler(message);
      if (outcome instanceof Promise) outcome.catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  /** The broker refused a SUBSCRIBE (and closes the connection after its ERROR). */
  private refused(error: RillError): void {
    // The connection dropped before the answer: the SUBSCRIBE is made again on the next one.
    if (!this.active || error.code === 'connection-lost') return;
    if (this.starting !== null) {
      this.end();
      this.starting.reject(error);
      this.starting = null;
      return;
    }
    // After a reconnect the broker may not have noticed yet that the old connection, which held
    // the member's name, is gone: the next connection tries again, as it does for retriable refusals.
    if (error.retriable || error.code === 'name-taken') {
      this.settings.onError(new RillError(error.code, `${this.description} is retried at the next connection: ${error.message}`, true));
      return;
    }
    this.end();
    this.settings.onError(new RillError(error.code, `${this.description} ended: ${error.message}`, false));
  }

  private end(): void {
    this.active = false;
    this.forget();
  }
}
