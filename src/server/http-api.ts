import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker } from '../broker/index.js';
import type { PublishTicket } from '../gateway/index.js';

type AnyBroker = Broker<PublishTicket>;

/**
 * The read-only HTTP endpoints on the HTTP port: health, the topic list, and each topic's
 * partitions with their offsets (which `rill tail --no-follow` uses to know where the end is).
 */
export async function handleHttpRequest(broker: AnyBroker, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return send(response, 405, { error: `${request.method} is not supported here` });
  }
  if (path === '/health') return send(response, 200, { status: 'ok' });
  if (path === '/v1/topics') {
    return send(response, 200, { topics: broker.listTopics().map((t) => ({ name: t.name, partitions: t.partitions })) });
  }
  const match = /^\/v1\/topics\/([^/]+)$/.exec(path);
  if (match !== null) {
    const topic = broker.topic(decodeURIComponent(match[1]));
    if (topic === undefined) return send(response, 404, { error: `no topic "${decodeURIComponent(match[1])}"` });
    const partitions = await Promise.all(
      topic.partitionIds.map(async (_, partition) => ({ partition, ...(await broker.offsets(topic, partition)) })),
    );
    return send(response, 200, {
      name: topic.name,
      partitions: partitions.map(({ partition, logStartOffset, logEndOffset }) => ({ partition, logStartOffset, logEndOffset })),
    });
  }
  return send(response, 404, { error: `nothing at ${path}` });
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}
