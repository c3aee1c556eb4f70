import type { IMessage } from '@stomp/stompjs';
import type { Connection } from './connection.js';
import { checkGroupName, checkTopic, groupDestination } from './destinations.js';
import { invalidAnswer, invalidArgument } from './errors.js';
import { type GroupMessage, messageFromFrame } from './messages.js';
import type { Settings } from './options.js';
import { randomId } from './random-id.js';
import { LiveSubscription } from './subscription.js';

export interface GroupSubscribeOptions {
  group: string;
  topic: string;
  /**
   * `client-individual` (the default): each message awaits ack() or nack(), and ACK commits;
   * `auto`: a message counts as consumed once delivered (at most once).
   */
  ackMode?: 'client-individual' | 'auto';
  /** Credit: most messages delivered and not yet settled at once (default: the broker's stomp.prefetch). */
  prefetch?: number;
  /**
   * The member's name. It is kept across reconnects, so that the member gets its partitions back
   * and the group resumes at its committed offsets (default: the group's name and a random suffix).
   */
  consumerName?: string;
  /** Static membership: a member back under this id within the session timeout keeps its partitions. */
  instanceId?: string;
  /** A handler that throws or rejects has its message NACKed (client-individual) and is reported through onError. */
  onMessage: (message: GroupMessage) => void | Promise<void>;
}

/** Most unacknowledged messages the broker takes as a prefetch-count. */
const MAX_PREFETCH = 9_999_999;

/**
 * A consumer group member over STOMP: SUBSCRIBE `/group/<group>/<topic>`. After a reconnect it
 * subscribes again under the same consumer name; the broker then hands it its partitions from the
 * group's committed offsets, so what was ACKed is not delivered again and what was not, is.
 */
export class GroupSubscription extends LiveSubscription {
  private readonly headers: Record<string, string>;

  constructor(
    connection: Connection,
    settings: Settings,
    private readonly options: GroupSubscribeOptions,
  ) {
    super(connection, settings, `group subscription ${options.group}/${options.topic}`);
    checkGroupName('group', options.group);
    checkTopic(options.topic);
    const ackMode = options.ackMode ?? 'client-individual';
    if (ackMode !== 'client-individual' && ackMode !== 'auto') throw invalidArgument(`ackMode must be client-individual or auto, not "${String(ackMode)}"`);
    const consumerName = checkGroupName('consumer name', options.consumerName ?? `${options.group.slice(0, 200)}-${randomId()}`);
    this.headers = { ack: ackMode, 'consumer-name': consumerName };
    if (options.prefetch !== undefined) {
      if (!Number.isSafeInteger(options.prefetch) || options.prefetch < 1 || options.prefetch > MAX_PREFETCH) {
        throw invalidArgument(`prefetch must be a whole number from 1 to ${MAX_PREFETCH}`);
      }
      this.headers['prefetch-count'] = String(options.prefetch);
    }
    if (options.instanceId !== undefined) this.headers['instance-id'] = checkGroupName('instance id', options.instanceId);
  }

  protected subscribeOn(epoch: number): void {
    this.subscribe(groupDestination(this.options.group, this.options.topic), this.headers, (frame) => this.deliver(frame, epoch));
  }

  private deliver(frame: IMessage, epoch: number): void {
    // While disconnect() waits for its answer nothing can be ACKed: the broker delivers it again to the group.
    if (!this.active || !this.connection.connected) return;
    const message = messageFromFrame(frame);
    if (message === null) {
      this.settings.onError(invalidAnswer(`a MESSAGE of ${this.description} without topic, partition, offset or timestamp`));
      return;
    }
    let settled = this.headers.ack === 'auto';
    const settle = (accept: boolean): boolean => {
      if (settled || !this.connection.settle(epoch, frame, accept)) return false;
      settled = true;
      return true;
    };
    const deliveryCount = Number(frame.headers['delivery-count'] ?? '1');
    const groupMessage: GroupMessage = Object.assign(message, {
      redelivered: frame.headers.redelivered === 'true',
      deliveryCount: Number.isSafeInteger(deliveryCount) ? deliveryCount : 1,
      ack: () => settle(true),
      nack: () => settle(false),
    });
    this.handOver(this.options.onMessage, groupMessage, () => settle(false));
  }
}
