import { topicName } from '../../config/index.js';
import { RillError } from '../../errors/index.js';
import type { Topic } from '../../broker/index.js';
import type { Frame, FrameHeaders } from '../../protocol/stomp/index.js';
import { parseDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import { AcknowledgmentSubscription } from '../subscriptions/acknowledgments.js';
import { GroupPush } from '../subscriptions/group-push.js';
import { ReplySubscription } from '../subscriptions/replies.js';
import { parseStartPosition } from '../subscriptions/start-position.js';
import { ACK_MODES, type AckMode, type Subscription } from '../subscriptions/subscription.js';
import { TopicTail } from '../subscriptions/topic-tail.js';

export function handleSubscribe(session: StompSession, frame: Frame): void {
  const { headers } = frame;
  const receipt = headers.receipt;
  const id = headers.id ?? (session.version === '1.0' ? headers.destination : undefined);
  if (id === undefined) return session.fail('SUBSCRIBE needs an id header', receipt);
  if (session.subscriptions.has(id)) return session.fail(`subscription id "${id}" is already in use on this connection`, receipt);
  if (headers.destination === undefined) return session.fail('SUBSCRIBE needs a destination header', receipt);
  const ackMode = headers.ack ?? 'auto';
  if (!ACK_MODES.has(ackMode)) return session.fail(`ack mode "${ackMode}" is not one of auto, client, client-individual`, receipt);
  const destination = parseDestination(headers.destination);
  if (destination === null || destination.kind === 'publish' || destination.kind === 'request') {
    return session.fail(
      `cannot subscribe to "${headers.destination}": subscribe to /topic/<topic>, /group/<group>/<topic>, /topic/acknowledgment/<topic> or /user/replies`,
      receipt,
    );
  }
  const number = session.nextSubscriptionNumber();
  const register = (subscription: Subscription): void => {
    session.subscriptions.set(id, subscription);
    session.subscriptionsByNumber.set(number, subscription);
  };

  if (destination.kind === 'user') {
    const replies = new ReplySubscription(session, id, number, ackMode as AckMode, destination.name);
    register(replies);
    session.replySubscriptions.set(destination.name, replies);
    session.sendReceipt(receipt);
    return;
  }

  if (destination.kind === 'acknowledgments') {
    const validName = topicName.safeParse(destination.topic);
    if (!validName.success) return session.fail(`invalid topic name "${destination.topic.slice(0, 300)}": ${validName.error.issues[0]?.message}`, receipt);
    const subscription = new AcknowledgmentSubscription(session, id, number, ackMode as AckMode, destination.topic);
    register(subscription);
    session.acknowledgmentSubscriptions.set(destination.topic, subscription);
    session.sendReceipt(receipt);
    return;
  }

  let topic: Topic;
  try {
    topic = session.broker.topics.resolve(destination.topic, 'auto');
  } catch (error) {
    if (error instanceof RillError) return session.fail(error.message, receipt);
    throw error;
  }
  const prefetch = parsePrefetch(headers['prefetch-count'], session.context.config.stomp.prefetch);
  if (prefetch === null) return session.fail(`invalid prefetch-count "${headers['prefetch-count']}"`, receipt);

  if (destination.kind === 'group') {
    subscribeToGroup(session, headers, id, number, ackMode as AckMode, destination.group, topic, prefetch, register);
    return;
  }

  const start = parseStartPosition(headers.from);
  if (start === null) {
    return session.fail(`invalid from header "${headers.from}": use latest, earliest, offset:<n> or timestamp:<ms or ISO date>`, receipt);
  }
  let partitions = Array.from({ length: topic.partitions }, (_, p) => p);
  if (headers.partition !== undefined) {
    const partition = Number(headers.partition);
    if (!/^\d+$/.test(headers.partition) || partition >= topic.partitions) {
      return session.fail(`partition header "${headers.partition}" is not a partition of topic ${topic.name} (0 to ${topic.partitions - 1})`, receipt);
    }
    partitions = [partition];
  }
  const tail = new TopicTail(session, id, number, ackMode as AckMode, topic, prefetch);
  register(tail);
  tail.start(start, partitions).then(
    () => session.sendReceipt(receipt),
    (error: Error) => session.fail(`subscription "${id}" could not start: ${error.message}`, receipt),
  );
}

/** Joins the group as a member named by `consumer-name` (default: unique to this subscription). */
function subscribeToGroup(
  session: StompSession,
  headers: FrameHeaders,
  id: string,
  number: number,
  ackMode: AckMode,
  group: string,
  topic: Topic,
  prefetch: number,
  register: (subscription: Subscription) => void,
): void {
  const memberName = headers['consumer-name'] ?? `${session.id}-${id}`;
  const coordinator = session.context.coordinator;
  if (coordinator.isBound(memberName)) {
    session.fail(`consumer "${memberName}" is already consuming on a live connection; give this subscription another consumer-name`, headers.receipt);
    return;
  }
  coordinator.join(group, memberName, { instanceId: headers['instance-id'], topics: [topic.name] }).then(
    () => {
      if (session.state !== 'connected') {
        coordinator.connectionLost(coordinator.member(memberName));
        return;
      }
      const push = new GroupPush(session, id, number, ackMode, topic, prefetch, coordinator.member(memberName));
      register(push);
      push.start();
      session.sendReceipt(headers.receipt);
    },
    (error: Error) => {
      const reason = error instanceof RillError ? error.message : `internal error: ${error.message}`;
      session.fail(`cannot join group "${group}": ${reason}`, headers.receipt);
    },
  );
}

export function handleUnsubscribe(session: StompSession, frame: Frame): void {
  const id = frame.headers.id ?? (session.version === '1.0' ? frame.headers.destination : undefined);
  if (id === undefined) return session.fail('UNSUBSCRIBE needs an id header', frame.headers.receipt);
  const subscription = session.subscriptions.get(id);
  if (subscription === undefined) return session.fail(`no subscription with id "${id}" on this connection`, frame.headers.receipt);
  subscription.close(true);
  session.subscriptions.delete(id);
  session.subscriptionsByNumber.delete(subscription.number);
  if (subscription instanceof AcknowledgmentSubscription && session.acknowledgmentSubscriptions.get(subscription.topic) === subscription) {
    session.acknowledgmentSubscriptions.delete(subscription.topic);
  }
  if (subscription instanceof ReplySubscription && session.replySubscriptions.get(subscription.destination) === subscription) {
    session.replySubscriptions.delete(subscription.destination);
  }
  session.sendReceipt(frame.headers.receipt);
}

function parsePrefetch(value: string | undefined, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) === 0) return null;
  return Number(value);
}
