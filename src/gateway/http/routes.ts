import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { fetchOptions, operations, type GroupCoordinator, type OperationName } from '../../coordinator/index.js';
import type { EffectiveTopicSettings, Topic } from '../../broker/index.js';
import { topicName, topicSettings, topicSettingsChange, type TopicSettings } from '../../config/index.js';
import { RillError } from '../../errors/index.js';
import { transact, transactInput } from '../publishing/index.js';
import { CLUSTER, topicResource, type AccessNeed, type Resource } from '../../security/index.js';
import { memberNeeds, operationNeeds, visibleGroups, type GroupList } from '../access.js';
import { HttpRouter, JsonAnswer, RawAnswer, type HttpContext, type RouteAccess, type RouteHandler } from './router.js';
import { recordBatchesAnswer } from './record-batches-answer.js';
import { seedRoutes } from './seed-routes.js';
import { uiRoutes } from './ui-routes.js';

/** Runs a consumer-group operation with the body's fields, the path's taking precedence. */
function runOperation(name: OperationName, context: HttpContext, input: unknown): Promise<unknown> {
  const operation = operations[name];
  const parsed = operation.input.safeParse(input);
  if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
  return Promise.resolve((operation.run as (c: GroupCoordinator, r: unknown) => unknown)(context.coordinator, parsed.data));
}

const withPath =
  (name: OperationName): RouteHandler =>
  (context, params, body) =>
    runOperation(name, context, { ...(body as object), ...params });

/** What an operation needs, from the body's fields and the path's (the same as the handler reads). */
const operationAccess =
  (name: OperationName): RouteAccess =>
  ({ coordinator, broker }, params, body) =>
    operationNeeds({ coordinator, topics: broker.topics }, name, { ...(body as object), ...params });

/** A member's request: its group, and the topics it subscribes to. */
const memberAccess: RouteAccess = ({ coordinator, broker }, { member }) => memberNeeds({ coordinator, topics: broker.topics }, member!);

const describe = (resource: Resource): AccessNeed[] => [{ operation: 'describe', resource }];

/** Checks that the member in the path belongs to the group in the path. */
function checkMember(coordinator: GroupCoordinator, group: string, member: string): void {
  if (!coordinator.group(group).members.has(member)) throw new RillError('unknown-member', `no consumer "${member}" in group "${group}"`);
}

/** A member's operation, checking that the member belongs to the group in the path. */
function memberOperation(name: OperationName): RouteHandler {
  return (context, { group, member }, body) => {
    checkMember(context.coordinator, group!, member!);
    return runOperation(name, context, { ...(body as object), member });
  };
}

const growTopic = z.object({ partitions: z.number().int().min(1).max(10_000) }).strict();
const newTopic = z
  .object({
    name: topicName,
    partitions: z.number().int().min(1).max(10_000).optional(),
    /** Priority lanes (2 to 10): `partitions` per lane; fixed at creation. */
    priorityLanes: z.number().int().min(1).max(10).optional(),
    /** The topic's own settings; the others are the broker's defaults. */
    config: topicSettings.optional(),
  })
  .strict();
/** A request body checked against its schema, before its access is (a malformed request is a 400, not a refusal). */
function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
  return parsed.data;
}

/** Deduplication keeps one ring per window length, and there is a bound on them. */
function checkDeduplicationWindow(broker: HttpContext['broker'], windowMs: number | null | undefined): void {
  if (windowMs === null || windowMs === undefined || broker.deduplication.acceptsWindow(windowMs)) return;
  throw new RillError('limit-reached', `too many different deduplication windows: use one another topic uses (or topics.deduplicationWindowMs)`);
}

/** A topic clients may manage: not internal, and there. */
function publicTopic(broker: HttpContext['broker'], name: string): Topic {
  const topic = name.startsWith('__') ? undefined : broker.topics.get(name);
  if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
  return topic;
}

/** A topic's settings as the API shows them: what it runs with, and which of them it sets itself. */
function settingsView(topic: Topic): { config: EffectiveTopicSettings; overrides: TopicSettings } {
  return { config: { ...topic.settings }, overrides: { ...topic.ownSettings } };
}

/** The browser example and the STOMP client it loads, the only files served. */
function staticFile(path: string, file: URL, contentType: string): RouteHandler {
  return async () => {
    try {
      return new RawAnswer(contentType, await readFile(file));
    } catch {
      throw new RillError('not-found', `${path} is not available in this installation`);
    }
  };
}

/** Where GET /metrics gets its text (the metrics are the server's: the gateway only serves them). */
export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

/** Every HTTP endpoint (docs/protocol.md lists them). */
export function httpRoutes(options: { metrics?: MetricsSource } = {}): HttpRouter {
  const router = new HttpRouter();
  const { route } = router;
  // Ready to serve: every worker up, and the deduplication windows read back (a publish waits for its topic's until then).
  route('GET', '/ready', 'public', ({ broker }) => {
    const health = broker.health();
    const waiting = [...(health.status === 'ok' ? [] : ['broker workers']), ...(broker.deduplicationReady ? [] : ['deduplication windows'])];
    return waiting.length === 0 ? { status: 'ready' } : new JsonAnswer(503, { status: 'starting', waitingFor: waiting, health });
  });
  const { metrics } = options;
  if (metrics !== undefined) {
    // Prometheus' text format; with authentication on, the scraper needs describe on the cluster (basic_auth in its config).
    route(
      'GET',
      '/metrics',
      () => describe(CLUSTER),
      async () => new RawAnswer(metrics.contentType, Buffer.from(await metrics.render())),
    );
  }
  // 503 while a broker worker is down, reopening its partitions or crash-looping, naming it and why.
  route('GET', '/health', 'public', ({ broker }) => {
    const health = broker.health();
    return health.status === 'ok' ? health : new JsonAnswer(503, health);
  });
  route(
    'GET',
    '/v1/stats',
    () => describe(CLUSTER),
    ({ broker }) => {
      const memory = process.memoryUsage();
      return {
        uptimeSeconds: Math.round(process.uptime()),
        memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external, arrayBuffers: memory.arrayBuffers },
        inflightBytes: broker.inflightBytes,
        topics: broker.topics.listPublic().length,
      };
    },
  );
  // Lists only the topics the caller may describe.
  route(
    'GET',
    '/v1/topics',
    () => [],
    ({ broker, rights }) => ({
      topics: broker.topics
        .listPublic()
        .filter((t) => rights.may('describe', topicResource(t.name)))
        .map((t) => ({ name: t.name, partitions: t.partitions })),
    }),
  );
  route(
    'GET',
    '/v1/topics/:topic',
    (_context, { topic }) => describe(topicResource(topic!)),
    async ({ broker }, { topic: name }) => {
      const topic = broker.topics.get(name!);
      if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
      const partitions = await Promise.all(
        topic.partitionIds.map(async (_, partition) => {
          const { logStartOffset, logEndOffset, sizeBytes = 0, segments = 0 } = await broker.offsets(topic, partition);
          return { partition, logStartOffset, logEndOffset, sizeBytes, segments, worker: broker.workerOf(topic, partition) };
        }),
      );
      return { name: topic.name, priorityLanes: topic.lanes, ...settingsView(topic), partitions };
    },
  );
  // Changing a topic's own settings (retention, limits, compression, deduplication, time-to-live); null puts a default back.
  route(
    'PATCH',
    '/v1/topics/:topic/config',
    (_context, { topic }, body) => {
      parseBody(topicSettingsChange, body);
      return [{ operation: 'alter', resource: topicResource(topic!) }];
    },
    ({ broker }, { topic: name }, body) => {
      const change = parseBody(topicSettingsChange, body);
      publicTopic(broker, name!);
      checkDeduplicationWindow(broker, change.deduplicationWindowMs);
      const topic = broker.topics.configure(name!, change);
      return { name: topic.name, ...settingsView(topic) };
    },
  );
  // Deleting a topic and its data: its consumers get an ERROR, its groups forget their offsets in it.
  route(
    'DELETE',
    '/v1/topics/:topic',
    (_context, { topic }) => [{ operation: 'delete', resource: topicResource(topic!) }],
    async ({ broker }, { topic: name }) => {
      if (name!.startsWith('__') && broker.topics.get(name!) !== undefined) {
        throw new RillError('invalid-request', `topic "${name}" is internal to Rill and cannot be deleted`);
      }
      await broker.topics.delete(publicTopic(broker, name!).name);
      return { name, deleted: true };
    },
  );
  // Creating a topic with its partitions (a topic named by a publisher gets topics.defaultPartitions).
  route(
    'POST',
    '/v1/topics',
    (_context, _params, body) => [{ operation: 'create', resource: topicResource(parseBody(newTopic, body).name) }],
    ({ broker }, _params, body) => {
      const { name, partitions, priorityLanes = 1, config = {} } = parseBody(newTopic, body);
      if (broker.topics.get(name) !== undefined) throw new RillError('name-taken', `topic "${name}" exists already`);
      checkDeduplicationWindow(broker, config.deduplicationWindowMs);
      const created = broker.topics.create(name, partitions ?? broker.topics.defaultPartitions, priorityLanes, config);
      return new JsonAnswer(201, { name: created.name, partitions: created.partitions, priorityLanes: created.lanes, ...settingsView(created) });
    },
  );
  // The STOMP connections: who, from where, what they subscribe to, how much they moved.
  route(
    'GET',
    '/v1/connections',
    () => describe(CLUSTER),
    ({ connections }) => ({ connections: connections.connections() }),
  );
  route(
    'DELETE',
    '/v1/connections/:session',
    () => [{ operation: 'alter', resource: CLUSTER }],
    ({ connections }, { session }) => {
      if (!connections.closeConnection(session!, 'closed by an operator')) throw new RillError('not-found', `no connection "${session}"`);
      return { session, closed: true };
    },
  );
  route(
    'POST',
    '/v1/topics/:topic/partitions',
    (_context, { topic }) => [{ operation: 'alter', resource: topicResource(topic!) }],
    ({ broker }, { topic: name }, body) => {
      const topic = broker.topics.get(name!);
      if (topic === undefined || name!.startsWith('__')) throw new RillError('unknown-topic', `no topic "${name}"`);
      const parsed = growTopic.safeParse(body);
      if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
      const grown = broker.topics.addPartitions(topic.name, parsed.data.partitions);
      return { name: grown.name, partitions: grown.partitions };
    },
  );
  // Lists only the groups the caller may describe.
  route(
    'GET',
    '/v1/groups',
    () => [],
    async (context) => visibleGroups(context.rights, (await runOperation('list-groups', context, {})) as GroupList),
  );
  for (const [method, path, operation] of [
    ['POST', '/v1/groups', 'create-group'],
    ['GET', '/v1/groups/:group', 'describe-group'],
    ['GET', '/v1/groups/:group/lag', 'lag'],
    ['POST', '/v1/groups/:group/offsets/reset', 'reset-offsets'],
    ['DELETE', '/v1/groups/:group', 'delete-group'],
    ['POST', '/v1/groups/:group/members', 'join'],
  ] as const) {
    route(method, path, operationAccess(operation), withPath(operation));
  }
  for (const [path, operation] of [
    ['subscription', 'subscribe'],
    ['heartbeat', 'heartbeat'],
    ['pull', 'pull'],
    ['commit', 'commit'],
    ['seek', 'seek'],
    ['reject', 'reject'],
  ] as const) {
    route('POST', `/v1/groups/:group/members/:member/${path}`, operationAccess(operation), memberOperation(operation));
  }
  route('DELETE', '/v1/groups/:group/members/:member', memberAccess, memberOperation('leave'));
  // Offsets and publishes committed together: the pull consumer's exactly-once step.
  // Each publish is checked as it is prepared: produce to its topic (and create it, if new).
  route('POST', '/v1/groups/:group/members/:member/transaction', memberAccess, ({ coordinator, publisher, authorizePublish }, { group, member }, body) => {
    checkMember(coordinator, group!, member!);
    const parsed = transactInput.safeParse({ ...(body as object), member });
    if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
    return transact(publisher, coordinator, parsed.data, authorizePublish);
  });
  // A pull that hands on the stored record batches, for clients that decode Kafka's format themselves.
  route('POST', '/v1/groups/:group/members/:member/fetch', memberAccess, async ({ coordinator }, { group, member }, body) => {
    checkMember(coordinator, group!, member!);
    const parsed = fetchOptions.safeParse(body);
    if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
    const { partitions, ...view } = await coordinator.pullBatches(member!, parsed.data);
    return recordBatchesAnswer(view, partitions);
  });
  seedRoutes(route);
  uiRoutes(route);
  // The browser example; it loads rill/client from the dashboard's /ui/vendor/ (see ui-routes.ts).
  route('GET', '/examples', 'public', staticFile('/examples', new URL('../../../examples/browser/index.html', import.meta.url), 'text/html; charset=utf-8'));
  return router;
}
