import { topicName } from '../../config/index.js';
import type { Topic } from '../../broker/index.js';
import type { Frame } from '../../protocol/stomp/index.js';
import { parseDestination } from '../destinations.js';
import type { StompSession } from '../session.js';
import { AcknowledgmentSubscription } from '../subscriptions/acknowledgments.js';
import { parseStartPosition } from '../subscriptions/start-position.js';
import { ACK_MODES, type AckMode } from '../subscriptions/subscription.js';
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
  if (destination === null || destination.kind === 'publish') {
    return session.fail(`cannot subscribe to "${headers.destination}": subscribe to /topic/<topic> or /topic/acknowledgment/<topic>`, receipt);
  }
  const validName = topicName.safeParse(destination.topic);
  if (!validName.success) return session.fail(`invalid topic name "${destination.topic.slice(0, 300)}": ${validName.error.issues[0].message}`, receipt);
  const number = session.nextSubscriptionNumber();

  if (destination.kind === 'acknowledgments') {
    const subscription = new AcknowledgmentSubscription(session, id, number, ackMode as AckMode, destination.topic);
    session.subscriptions.set(id, subscription);
    session.subscriptionsByNumber.set(number, subscription);
    session.acknowledgmentSubscriptions.set(destination.topic, subscription);
    session.sendReceipt(receipt);
    return;
  }

  const start = parseStartPosition(headers.from);
  if (start === null) {
    return session.fail(`invalid from header "${headers.from}": use latest, earliest, offset:<n> or timestamp:<ms or ISO date>`, receipt);
  }
  const topic = findOrCreateTopic(session, destination.topic);
  if (topic === undefined) return session.fail(`topic "${destination.topic}" does not exist and auto-create is off`, receipt);
  let partitions = Array.from({ length: topic.partitions }, (_, p) => p);
  if (headers.partition !== undefined) {
    const partition = Number(headers.partition);
    if (!/^\d+$/.test(headers.partition) || partition >= topic.partitions) {
      return session.fail(`partition header "${headers.partition}" is not a partition of topic ${topic.name} (0 to ${topic.partitions - 1})`, receipt);
    }
    partitions = [partition];
  }
  const prefetch = parsePrefetch(headers['prefetch-count'], session.context.config.stomp.prefetch);
  if (prefetch === null) return session.fail(`invalid prefetch-count "${headers['prefetch-count']}"`, receipt);
  const tail = new TopicTail(session, id, number, ackMode as AckMode, topic, prefetch);
  session.subscriptions.set(id, tail);
  session.subscriptionsByNumber.set(number, tail);
  tail.start(start, partitions).then(
    () => session.sendReceipt(receipt),
    (error: Error) => session.fail(`subscription "${id}" could not start: ${error.message}`, receipt),
  );
}

export function handleUnsubscribe(session: StompSession, frame: Frame): void {
  const id = frame.headers.id ?? (session.version === '1.0' ? frame.headers.destination : undefined);
  if (id === undefined) return session.fail('UNSUBSCRIBE needs an id header', frame.headers.receipt);
  const subscription = session.subscriptions.get(id);
  if (subscription === undefined) return session.fail(`no subscription with id "${id}" on this connection`, frame.headers.receipt);
  subscription.close();
  session.subscriptions.delete(id);
  session.subscriptionsByNumber.delete(subscription.number);
  if (subscription instanceof AcknowledgmentSubscription && session.acknowledgmentSubscriptions.get(subscription.topic) === subscription) {
    session.acknowledgmentSubscriptions.delete(subscription.topic);
  }
  session.sendReceipt(frame.headers.receipt);
}

function findOrCreateTopic(session: StompSession, name: string): Topic | undefined {
  const existing = session.broker.topic(name);
  if (existing !== undefined || !session.context.config.topics.autoCreate) return existing;
  return session.broker.createTopic(name, session.context.config.topics.defaultPartitions);
}

function parsePrefetch(value: string | undefined, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) === 0) return null;
  return Number(value);
}
