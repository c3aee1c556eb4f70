import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Broker } from '../../broker/index.js';
import { operations, type GroupCoordinator, type OperationName } from '../../coordinator/index.js';
import { asRillError, RillError, toHttp } from '../../errors/index.js';
import { seedRoutes } from './seed-routes.js';

const MAX_BODY_BYTES = 1024 * 1024;

export interface HttpContext {
  broker: Pick<Broker, 'topics' | 'offsets' | 'inflightBytes'>;
  coordinator: GroupCoordinator;
}

export type Params = Record<string, string>;
export type RouteHandler = (context: HttpContext, params: Params, body: unknown) => Promise<unknown> | unknown;

interface Route {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: RouteHandler;
}

const routes: Route[] = [];

export function route(method: string, path: string, handler: RouteHandler): void {
  const names: string[] = [];
  const pattern = new RegExp(`^${path.replace(/:(\w+)/g, (_, n: string) => (names.push(n), '([^/]+)'))}$`);
  routes.push({ method, pattern, names, handler });
}

/** Runs a consumer-group operation with the body's fields, the path's taking precedence. */
export function runOperation(name: OperationName, context: HttpContext, input: unknown): Promise<unknown> {
  const operation = operations[name];
  const parsed = operation.input.safeParse(input);
  if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
  return Promise.resolve((operation.run as (c: GroupCoordinator, r: unknown) => unknown)(context.coordinator, parsed.data));
}

const withPath = (name: OperationName): RouteHandler => (context, params, body) => runOperation(name, context, { ...(body as object), ...params });

route('GET', '/health', () => ({ status: 'ok' }));
route('GET', '/v1/stats', ({ broker }) => {
  const memory = process.memoryUsage();
  return {
    uptimeSeconds: Math.round(process.uptime()),
    memory: { rss: memory.rss, heapUsed: memory.heapUsed, heapTotal: memory.heapTotal, external: memory.external, arrayBuffers: memory.arrayBuffers },
    inflightBytes: broker.inflightBytes,
    topics: broker.topics.listPublic().length,
  };
});
route('GET', '/v1/topics', ({ broker }) => ({
  topics: broker.topics.listPublic().map((t) => ({ name: t.name, partitions: t.partitions })),
}));
route('GET', '/v1/topics/:topic', async ({ broker }, { topic: name }) => {
  const topic = broker.topics.get(name);
  if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
  const partitions = await Promise.all(
    topic.partitionIds.map(async (_, partition) => {
      const { logStartOffset, logEndOffset } = await broker.offsets(topic, partition);
      return { partition, logStartOffset, logEndOffset };
    }),
  );
  return { name: topic.name, partitions };
});
const growTopic = z.object({ partitions: z.number().int().min(1).max(10_000) }).strict();
route('POST', '/v1/topics/:topic/partitions', ({ broker }, { topic: name }, body) => {
  const topic = broker.topics.get(name);
  if (topic === undefined || name.startsWith('__')) throw new RillError('unknown-topic', `no topic "${name}"`);
  const parsed = growTopic.safeParse(body);
  if (!parsed.success) throw new RillError('invalid-request', z.prettifyError(parsed.error).replace(/\n/g, ' '));
  if (parsed.data.partitions <= topic.partitions) {
    throw new RillError('invalid-request', `topic "${name}" has ${topic.partitions} partitions; a topic can only grow`);
  }
  const grown = broker.topics.addPartitions(name, parsed.data.partitions);
  return { name: grown.name, partitions: grown.partitions };
});
route('GET', '/v1/groups', (context) => runOperation('list-groups', context, {}));
route('POST', '/v1/groups', withPath('create-group'));
route('GET', '/v1/groups/:group', withPath('describe-group'));
route('GET', '/v1/groups/:group/lag', withPath('lag'));
route('POST', '/v1/groups/:group/offsets/reset', withPath('reset-offsets'));
route('POST', '/v1/groups/:group/members', withPath('join'));
for (const [path, operation] of [
  ['subscription', 'subscribe'],
  ['heartbeat', 'heartbeat'],
  ['pull', 'pull'],
  ['commit', 'commit'],
  ['seek', 'seek'],
] as const) {
  route('POST', `/v1/groups/:group/members/:member/${path}`, memberOperation(operation));
}
route('DELETE', '/v1/groups/:group/members/:member', memberOperation('leave'));
seedRoutes(route);

/** A member's operation, checking that the member belongs to the group in the path. */
function memberOperation(name: OperationName): RouteHandler {
  return (context, { group, member }, body) => {
    const described = context.coordinator.group(group);
    if (!described.members.has(member)) throw new RillError('unknown-member', `no consumer "${member}" in group "${group}"`);
    return runOperation(name, context, { ...(body as object), member });
  };
}

/** The browser example and the STOMP client it loads, the only files served. */
const STATIC_FILES: Record<string, { file: URL; type: string }> = {
  '/examples': { file: new URL('../../../examples/browser/index.html', import.meta.url), type: 'text/html; charset=utf-8' },
  '/examples/stomp.umd.min.js': { file: new URL('../bundles/stomp.umd.min.js', import.meta.resolve('@stomp/stompjs')), type: 'text/javascript' },
};

export async function handleHttpRequest(context: HttpContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const staticFile = request.method === 'GET' ? STATIC_FILES[path] : undefined;
  if (staticFile !== undefined) {
    try {
      const content = await readFile(staticFile.file);
      response.writeHead(200, { 'content-type': staticFile.type, 'content-length': content.length });
      response.end(content);
    } catch {
      const { status, body } = toHttp(new RillError('not-found', `${path} is not available in this installation`));
      send(response, status, body);
    }
    return;
  }
  try {
    const candidates = routes.filter((r) => r.pattern.test(path));
    if (candidates.length === 0) throw new RillError('not-found', `nothing at ${path}`);
    const matched = candidates.find((r) => r.method === request.method || (r.method === 'GET' && request.method === 'HEAD'));
    if (matched === undefined) throw new RillError('method-not-allowed', `${request.method} is not supported at ${path}; use ${candidates.map((r) => r.method).join(' or ')}`);
    const values = matched.pattern.exec(path)!.slice(1).map(decodeURIComponent);
    const params = Object.fromEntries(matched.names.map((n, i) => [n, values[i]]));
    const body = request.method === 'POST' || request.method === 'PUT' || request.method === 'DELETE' ? await readJson(request) : {};
    send(response, 200, await matched.handler(context, params, body));
  } catch (error) {
    const { status, body } = toHttp(asRillError(error));
    send(response, status, body);
  }
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new RillError('too-large', `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('expected a JSON object');
    return value;
  } catch (error) {
    throw new RillError('invalid-json', `request body is not a JSON object: ${(error as Error).message}`);
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
