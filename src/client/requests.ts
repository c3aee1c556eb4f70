import type { IMessage } from '@stomp/stompjs';
import type { Connection, ConnectionUser } from './connection.js';
import { REPLY_DESTINATION, requestDestination } from './destinations.js';
import { connectionLost, invalidAnswer, type RillError } from './errors.js';
import { errorFromAnswer, type MemberView, parseAssignmentEvent, parseJson } from './wire.js';

interface Pending {
  operation: string;
  resolve: (body: unknown) => void;
  reject: (error: RillError) => void;
}

/**
 * Consumer-group requests over STOMP: a SEND to `/request/<operation>` with a `correlation-id`,
 * answered by a MESSAGE with the same `correlation-id` and a `status` on the connection's reply
 * subscription (`/user/replies`, made once per connection). A request whose connection drops
 * before the answer fails with `connection-lost`: requests such as pull are not resent blindly.
 */
export class Requests implements ConnectionUser {
  private readonly pending = new Map<string, Pending>();
  private readonly assignmentListeners = new Set<(view: MemberView) => void>();
  /** The connection whose reply subscription is up. */
  private repliesOn = 0;
  private nextId = 0;

  constructor(private readonly connection: Connection) {
    connection.use(this);
  }

  /** The number of the current connection (see Connection.epoch). */
  get epoch(): number {
    return this.connection.epoch;
  }

  /** Resolves once there is a connection. */
  ready(): Promise<void> {
    return this.connection.whenConnected();
  }

  /** Waits for a connection, sends the request, and resolves to its answer, checked by `parse` (null: not the documented shape). */
  async call<T>(operation: string, request: Record<string, unknown>, parse: (body: unknown) => T | null): Promise<T> {
    await this.connection.whenConnected();
    const epoch = this.connection.epoch;
    if (this.repliesOn !== epoch) {
      // Sent before the request on the same connection, so the broker has it when the request comes.
      this.connection.subscribe(REPLY_DESTINATION, {}, (frame) => this.onReply(frame));
      this.repliesOn = epoch;
    }
    const correlationId = `q-${++this.nextId}`;
    const body = await new Promise<unknown>((resolve, reject) => {
      this.pending.set(correlationId, { operation, resolve, reject });
      const headers = { 'correlation-id': correlationId, 'content-type': 'application/json' };
      if (!this.connection.send(requestDestination(operation), headers, JSON.stringify(request))) {
        this.pending.delete(correlationId);
        reject(connectionLost(`before request ${operation} was sent`));
      }
    });
    const answer = parse(body);
    if (answer === null) throw invalidAnswer(`${operation} answered ${JSON.stringify(body)?.slice(0, 200)}`);
    return answer;
  }

  /** Hears of every new assignment of the members joined over this client's connections. */
  onAssignment(listener: (view: MemberView) => void): () => void {
    this.assignmentListeners.add(listener);
    return () => this.assignmentListeners.delete(listener);
  }

  connected(): void {}

  disconnected(): void {
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(connectionLost(`before the broker answered request ${pending.operation}`));
    }
  }

  closed(reason: RillError): void {
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(reason);
    }
  }

  private onReply(frame: IMessage): void {
    const body = parseJson(frame.body);
    if (frame.headers.event === 'assignment') {
      const view = parseAssignmentEvent(body);
      if (view !== null) for (const listener of this.assignmentListeners) listener(view);
      return;
    }
    const id = frame.headers['correlation-id'];
    const pending = id === undefined ? undefined : this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id!);
    const status = Number(frame.headers.status);
    if (status === 200) pending.resolve(body);
    else pending.reject(errorFromAnswer(status, body));
  }
}
