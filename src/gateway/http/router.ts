import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { Broker } from '../../broker/index.js';
import type { Publisher } from '../publishing/index.js';
import type { GroupCoordinator } from '../../coordinator/index.js';
import { asRillError, RillError, toHttp } from '../../errors/index.js';

const MAX_BODY_BYTES = 1024 * 1024;
const METHODS: HTTPMethod[] = ['GET', 'POST', 'PUT', 'DELETE'];

/** What HTTP handlers may use. */
export interface HttpContext {
  broker: Pick<Broker, 'topics' | 'offsets' | 'inflightBytes' | 'health'>;
  coordinator: GroupCoordinator;
  publisher: Publisher;
}

export type Params = Record<string, string>;
export type RouteHandler = (context: HttpContext, params: Params, body: unknown) => Promise<unknown> | unknown;
export type RouteRegistrar = (method: string, path: string, handler: RouteHandler) => void;

/** A raw answer (a file), for the routes that do not answer JSON. */
export class RawAnswer {
  constructor(
    readonly contentType: string,
    /** Several buffers are written one after the other, never concatenated. */
    readonly content: Buffer | readonly Buffer[],
  ) {}
}

/** A JSON answer with a status other than 200 (GET /health's 503), for a route that answers without failing. */
export class JsonAnswer {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {}
}

/**
 * The HTTP front door's dispatch: find-my-way matches the path, the handler gets the path
 * parameters and the JSON body, and whatever it returns is the 200 answer (a JsonAnswer chooses
 * its status). Every failure is a RillError answered with its code's status and the one error
 * body (src/errors).
 */
export class HttpRouter {
  private readonly router = FindMyWay({ ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, maxParamLength: 1024 });

  readonly route: RouteRegistrar = (method, path, handler) => {
    this.router.on(method as HTTPMethod, path, () => undefined, handler);
  };

  async handle(context: HttpContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      const method = (request.method === 'HEAD' ? 'GET' : request.method) as HTTPMethod;
      const match = this.router.find(method, path);
      if (match === null) {
        const allowed = METHODS.filter((m) => this.router.hasRoute(m, path) || this.router.find(m, path) !== null);
        if (allowed.length === 0) throw new RillError('not-found', `nothing at ${path}`);
        throw new RillError('method-not-allowed', `${request.method} is not supported at ${path}; use ${allowed.join(' or ')}`);
      }
      const params: Params = {};
      for (const [name, value] of Object.entries(match.params)) if (value !== undefined) params[name] = value;
      const body = method === 'POST' || method === 'PUT' || method === 'DELETE' ? await readJson(request) : {};
      const result = await (match.store as RouteHandler)(context, params, body);
      if (result instanceof RawAnswer) {
        const parts = Buffer.isBuffer(result.content) ? [result.content] : result.content;
        response.writeHead(200, { 'content-type': result.contentType, 'content-length': parts.reduce((sum, part) => sum + part.length, 0) });
        for (const part of parts) response.write(part);
        response.end();
      } else if (result instanceof JsonAnswer) send(response, result.status, result.body);
      else send(response, 200, result);
    } catch (error) {
      const { status, body } = toHttp(asRillError(error));
      send(response, status, body);
    }
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
