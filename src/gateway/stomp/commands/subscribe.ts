import type { Topic } from '../../../broker/index.js';
import { topicName } from '../../../config/index.js';
import { asRillError, RillError } from '../../../errors/index.js';
import type { Frame, FrameHeaders } from '../../../protocol/stomp/index.js';
import { type AccessNeed, topicResource } from '../../../security/index.js';
import { acknowledgmentNeeds, groupMemberNeeds, requireAll, tailNeeds } from '../../access.js';
import type { CommandContext } from '../command-context.js';
import { parseDestination } from '../destinations.js';
import { AcknowledgmentSubscription } from '../subscriptions/acknowledgments.js';
import { GroupPush } from '../subscriptions/group-push.js';
import { ReplySubscription } from '../subscriptions/replies.js';
import { parseStartPosition } from '../subscriptions/start-position.js';
import { ACK_MODES, type AckMode } from '../subscriptions/subscription.js';
import { TopicTail } from '../subscriptions/topic-tail.js';

/** What every kind of SUBSCRIBE has checked before it is set up. */
interface SubscribeRequest {
  id: string;
  number: number;
  ackMode: AckMode;
  receipt: string | undefined;
}

/**
 * SUBSCRIBE: `/topic/<topic>` (a live tail), `/group/<group>/<topic>` (a consumer-group member),
 * `/topic/acknowledgment/<topic>` (this connection's publish acknowledgments), `/user/<name>`
 * (replies to requests).
 */
export function handleSubscribe(context: CommandContext, frame: Frame): void {
  const { headers } = frame;
  const receipt = headers.receipt;
  const refuse = (code: 'invalid-request' | 'invalid-destination', message: string): void => context.fail(new RillError(code, message), receipt);
  const id = headers.id ?? (context.version === '1.0' ? headers.destination : undefined);
  if (id === undefined) return refuse('invalid-request', 'SUBSCRIBE needs an id header');
  const number = context.subscriptions.reserve(id);
  if (headers.destination === undefined) return refuse('invalid-request', 'SUBSCRIBE needs a destination header');
  const ackMode = headers.ack ?? 'auto';
  if (!ACK_MODES.has(ackMode)) return refuse('invalid-request', `ack mode "${ackMode}" is not one of auto, client, client-individual`);
  const destination = parseDestination(headers.destination);
  if (destination === null || destination.kind === 'publish' || destination.kind === 'request' || destination.kind === 'session-token') {
    return refuse(
      'invalid-destination',
      `cannot subscribe to "${headers.destination}": subscribe to /topic/<topic>, /group/<group>/<topic>, /topic/acknowledgment/<topic> or /user/replies`,
    );
  }
  const request: SubscribeRequest = { id, number, ackMode: ackMode as AckMode, receipt };

  if (destination.kind === 'user') {
    const replies = new ReplySubscription(context.channel, id, number, request.ackMode, destination.name);
    context.subscriptions.addReplies(destination.name, replies, replies);
    context.receipt(receipt);
    return;
  }

  if (destination.kind === 'acknowledgments') {
    const validName = topicName.safeParse(destination.topic);
    if (!validName.success)
      return refuse('invalid-destination', `invalid topic name "${destination.topic.slice(0, 300)}": ${validName.error.issues[0]?.message}`);
    const needs = acknowledgmentNeeds(destination.topic);
    requireAll(context.rights, needs);
    const acknowledgments = new AcknowledgmentSubscription(context.channel, id, number, request.ackMode, destination.topic);
    context.subscriptions.addAcknowledgments(destination.topic, acknowledgments, acknowledgments, needs);
    context.receipt(receipt);
    return;
  }

  const needs = destination.kind === 'group' ? groupMemberNeeds(destination.group, destination.topic) : tailNeeds(destination.topic);
  requireAll(context.rights, needs);
  // Naming a topic that does not exist creates it (auto-create), which takes its own right.
  if (context.services.topics.get(destination.topic) === undefined) context.rights.require('create', topicResource(destination.topic));
  const topic = context.services.topics.resolve(destination.topic, 'auto', context.topicQuota);
  const prefetch = parsePrefetch(headers['prefetch-count'], context.services.stomp.prefetch);
  if (prefetch === null) return refuse('invalid-request', `invalid prefetch-count "${headers['prefetch-count']}"`);
  if (destination.kind === 'group') return subscribeToGroup(context, request, headers, destination.group, topic, prefetch, needs);
  subscribeToTail(context, request, headers, topic, prefetch, needs);
}

function subscribeToTail(
  context: CommandContext,
  request: SubscribeRequest,
  headers: FrameHeaders,
  topic: Topic,
  prefetch: number,
  needs: readonly AccessNeed[],
): void {
  const start = parseStartPosition(headers.from);
  if (start === null) {
    context.fail(
      new RillError('invalid-request', `invalid from header "${headers.from}": use latest, earliest, offset:<n> or timestamp:<ms or ISO date>`),
      request.receipt,
    );
    return;
  }
  let partitions = Array.from({ length: topic.partitions }, (_, p) => p);
  if (headers.partition !== undefined) {
    const partition = Number(headers.partition);
    if (!/^\d+$/.test(headers.partition) || partition >= topic.partitions) {
      const message = `partition header "${headers.partition}" is not a partition of topic ${topic.name} (0 to ${topic.partitions - 1})`;
      context.fail(new RillError('invalid-request', message), request.receipt);
      return;
    }
    partitions = [partition];
  }
  const tail = new TopicTail(context.channel, context.services.log, request.id, request.number, request.ackMode, topic, prefetch);
  context.subscriptions.add(tail, needs);
  const answer = context.later(request.receipt);
  tail.start(start, partitions).then(
    () => answer.receipt(),
    (error: unknown) => answer.fail(new RillError(asRillError(error).code, `subscription "${request.id}" could not start: ${asRillError(error).message}`)),
  );
}

/** Joins the group as a member named by `consumer-name` (default: unique to this subscription). */
function subscribeToGroup(
  context: CommandContext,
  request: SubscribeRequest,
  headers: FrameHeaders,
  group: string,
  topic: Topic,
  prefetch: number,
  needs: readonly AccessNeed[],
): void {
  const memberName = headers['consumer-name'] ?? `${context.sessionId}-${request.id}`;
  const { coordinator, log } = context.services;
  const answer = context.later(request.receipt);
  let push: GroupPush | undefined;
  coordinator
    .connect(group, memberName, { instanceId: headers['instance-id'], topics: [topic.name] }, (_generation, assignment) => push?.assigned(assignment))
    .then(
      (binding) => {
        if (!context.isConnected) {
          // The connection ended, or is ending after an ERROR, meanwhile: the member goes; the
          // RECEIPT still takes its turn, so that the ERROR after it is not held up.
          binding.release(false);
          answer.receipt();
          return;
        }
        // The rules may have been reloaded while the member joined.
        const revoked = needs.map((need) => context.rights.decide(need.operation, need.resource)).find((refusal) => refusal !== null);
        if (revoked !== undefined) {
          binding.release(false);
          answer.fail(revoked);
          return;
        }
        push = new GroupPush(context.channel, log, coordinator, context.services.logger, request.id, request.number, request.ackMode, topic, prefetch, binding);
        context.subscriptions.add(push, needs);
        push.start();
        answer.receipt();
      },
      (error: unknown) => {
        const failure = asRillError(error);
        answer.fail(
          new RillError(failure.code, `cannot join group "${group}": ${failure.code === 'internal' ? `internal error: ${failure.message}` : failure.message}`),
        );
      },
    );
}

export function handleUnsubscribe(context: CommandContext, frame: Frame): void {
  const id = frame.headers.id ?? (context.version === '1.0' ? frame.headers.destination : undefined);
  if (id === undefined) {
    context.fail(new RillError('invalid-request', 'UNSUBSCRIBE needs an id header'), frame.headers.receipt);
    return;
  }
  context.subscriptions.remove(id);
  context.receipt(frame.headers.receipt);
}

function parsePrefetch(value: string | undefined, fallback: number): number | null {
  if (value === undefined) return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) === 0) return null;
  return Number(value);
}
