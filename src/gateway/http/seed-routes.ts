import { z } from 'zod';
import type { GroupCoordinator, PulledRecord } from '../../coordinator/index.js';
import { RillError } from '../../errors/index.js';
import { groupResource } from '../../security/index.js';
import { memberNeeds } from '../access.js';
import type { RouteAccess, RouteRegistrar } from './router.js';

/*
 * The consumer endpoints of the seed system, with exactly the request shapes its consumer script
 * sends (snake_case, a topic_list that may be a single topic, a poll that hands out one message
 * and an acknowledgement by messageId). The /v1 API offers the same with batches and offsets.
 */

const consumerName = z.string().min(1).max(249);
const schemas = {
  addGroup: z.object({ consumer_group_name: z.string().min(1).max(249) }),
  register: z.object({ consumer_group_name: z.string().min(1).max(249), consumer_name: consumerName }),
  subscribe: z.object({ consumer_name: consumerName, topic_list: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]) }),
  consumer: z.object({ consumer_name: consumerName }),
  acknowledge: z.object({ consumer_name: consumerName, message_id: z.union([z.string(), z.number().transform(String)]) }),
};

function parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const result = schema.safeParse(body);
  if (!result.success) throw new RillError('invalid-request', z.prettifyError(result.error).replace(/\n/g, ' '));
  return result.data;
}

/** The seed's poll answer: the message's own fields at the top, as its producers sent them. */
function seedMessage(record: Omit<PulledRecord, 'headers'>): object {
  const text = record.value.toString('utf8');
  let message: unknown = text;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (parsed !== null && typeof parsed === 'object' && 'message' in parsed) message = parsed.message;
  } catch {
    // a raw body: hand it over as text
  }
  return {
    messageId: record.messageId,
    key: record.key,
    message,
    timestamp: record.timestamp,
    topic: record.topic,
    partition: record.partition,
    offset: record.offset,
  };
}

/** A topic_list as the seed sends it: one topic, a comma-separated list, or an array. */
const seedTopics = (list: string | string[]): string[] => (Array.isArray(list) ? list : list.split(',')).map((t) => t.trim()).filter(Boolean);

/*
 * The seed's requests name the group, or the consumer (whose group and topics they act in). Access
 * is worked out from the body read exactly as the handler reads it, so the two cannot differ.
 */
const groupAccess: RouteAccess = (_context, _params, body) => [
  { operation: 'join', resource: groupResource(parse(schemas.addGroup, body).consumer_group_name) },
];
const consumerAccess: RouteAccess = ({ coordinator, broker }, _params, body) =>
  memberNeeds({ coordinator, topics: broker.topics }, parse(schemas.consumer, body).consumer_name);
const subscribeAccess: RouteAccess = ({ coordinator, broker }, _params, body) => {
  const { consumer_name, topic_list } = parse(schemas.subscribe, body);
  return memberNeeds({ coordinator, topics: broker.topics }, consumer_name, seedTopics(topic_list));
};

export function seedRoutes(route: RouteRegistrar): void {
  const coordinatorOf = (context: { coordinator: GroupCoordinator }) => context.coordinator;
  route('POST', '/consumer-group/add', groupAccess, async (context, _params, body) => {
    const { consumer_group_name } = parse(schemas.addGroup, body);
    const group = await coordinatorOf(context).createGroup(consumer_group_name);
    return { consumer_group_name: group.name, generation: group.generation };
  });
  route('POST', '/consumer/register-consumer', groupAccess, async (context, _params, body) => {
    const { consumer_group_name, consumer_name } = parse(schemas.register, body);
    return coordinatorOf(context).join(consumer_group_name, consumer_name);
  });
  route('POST', '/consumer/subscribe-topic', subscribeAccess, (context, _params, body) => {
    const { consumer_name, topic_list } = parse(schemas.subscribe, body);
    const added = seedTopics(topic_list);
    // The seed adds topics one call at a time; the /v1 API replaces the whole subscription.
    return coordinatorOf(context).addTopics(consumer_name, added);
  });
  route('POST', '/consumer/heartbeat', consumerAccess, (context, _params, body) => {
    const { consumer_name } = parse(schemas.consumer, body);
    return coordinatorOf(context).heartbeat(consumer_name);
  });
  route('POST', '/consumer/poll', consumerAccess, async (context, _params, body) => {
    const { consumer_name } = parse(schemas.consumer, body);
    const coordinator = coordinatorOf(context);
    const { records } = await coordinator.pull(consumer_name, { maxMessages: 1 });
    const [record] = records;
    if (record === undefined) return { messageId: null };
    const messageId = record.messageId ?? `${record.topic}-${record.partition}-${record.offset}`;
    coordinator.rememberPolled(consumer_name, messageId, { topic: record.topic, partition: record.partition, offset: record.offset });
    return { ...seedMessage(record), messageId };
  });
  route('POST', '/consumer/acknowledgement', consumerAccess, async (context, _params, body) => {
    const { consumer_name, message_id } = parse(schemas.acknowledge, body);
    const ref = await coordinatorOf(context).acknowledge(consumer_name, message_id);
    return { acknowledged: true, messageId: message_id, ...ref };
  });
  route('POST', '/consumer/leave', consumerAccess, async (context, _params, body) => {
    const { consumer_name } = parse(schemas.consumer, body);
    await coordinatorOf(context).leave(consumer_name);
    return { consumer_name, left: true };
  });
}
