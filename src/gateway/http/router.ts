import type { IncomingMessage, ServerResponse } from 'node:http';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { Broker } from '../../broker/index.js';
import type { Publisher } from '../publishing/index.js';
import type { GroupCoordinator } from '../../coordinator/index.js';
import { asRillError, RillError, toHttp } from '../../errors/index.js';
import { anonymousPrincipal, PrincipalRights, type AccessNeed, type OriginPolicy, type Security } from '../../security/index.js';
import { publishAuthorizer, requireAll } from '../access.js';
import type { Gateway } from '../gateway.js';
import type { PublishAuthorizer } from '../publishing/index.js';
import { verifiedCertificateSubject } from '../transport/index.js';

const MAX_BODY_BYTES = 1024 * 1024;
const METHODS: HTTPMethod[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

/** What the HTTP front door is built on. */
export interface HttpServices {
  broker: Pick<Broker, 'topics' | 'offsets' | 'inflightBytes' | 'health' | 'deduplicationReady' | 'workerOf' | 'deduplication'>;
  coordinator: GroupCoordinator;
  publisher: Publisher;
  security: Security;
  origins: OriginPolicy;
  /** The STOMP connections, as operators list and close them. */
  connections: Pick<Gateway, 'connections' | 'closeConnection'>;
}

/** What HTTP handlers may use: the services, and what the request's principal may do. */
export interface HttpContext extends HttpServices {
  rights: PrincipalRights;
  authorizePublish: PublishAuthorizer;
}

export type Params = Record<string, string>;
export type RouteHandler = (context: HttpContext, params: Params, body: unknown) => Promise<unknown> | unknown;
/**
 * What a route needs its caller to be allowed, from the request (checked before the handler
 * runs), or `public` for the few any client may call without credentials (health, the example
 * page). Every route says which, so none is left open by forgetting.
 */
export type RouteAccess = 'public' | ((context: HttpContext, params: Params, body: unknown) => readonly AccessNeed[]);
export type RouteRegistrar = (method: string, path: string, access: RouteAccess, handler: RouteHandler) => void;

interface Route {
  access: RouteAccess;
  handler: RouteHandler;
}

/** How long a browser may keep a CORS preflight's answer. */
const PREFLIGHT_MAX_AGE_S = 600;

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

  readonly route: RouteRegistrar = (method, path, access, handler) => {
    this.router.on(method as HTTPMethod, path, () => undefined, { access, handler } satisfies Route);
  };

  async handle(services: HttpServices, request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      if (!this.crossOrigin(services.origins, request, response)) return;
      if (request.method === 'OPTIONS') return this.preflight(path, response);
      const method = (request.method === 'HEAD' ? 'GET' : request.method) as HTTPMethod;
      const match = this.router.find(method, path);
      if (match === null) {
        const allowed = METHODS.filter((m) => this.router.hasRoute(m, path) || this.router.find(m, path) !== null);
        if (allowed.length === 0) throw new RillError('not-found', `nothing at ${path}`);
        throw new RillError('method-not-allowed', `${request.method} is not supported at ${path}; use ${allowed.join(' or ')}`);
      }
      const params: Params = {};
      for (const [name, value] of Object.entries(match.params)) if (value !== undefined) params[name] = value;
      const { access, handler } = match.store as Route;
      const remote = `${request.socket.remoteAddress}:${request.socket.remotePort}`;
      const principal =
        access === 'public'
          ? anonymousPrincipal()
          : await services.security.authenticateHttp(request.headers.authorization, remote, verifiedCertificateSubject(request.socket));
      const rights = new PrincipalRights(services.security, principal, remote);
      const context: HttpContext = { ...services, rights, authorizePublish: publishAuthorizer(rights, services.broker.topics) };
      const body = method === 'GET' ? {} : await readJson(request);
      const needs = access === 'public' ? [] : access(context, params, body);
      requireAll(rights, needs);
      const result = await handler(context, params, body);
      rights.audit(needs);
      if (result instanceof RawAnswer) {
        const parts = Buffer.isBuffer(result.content) ? [result.content] : result.content;
        response.writeHead(200, { 'content-type': result.contentType, 'content-length': parts.reduce((sum, part) => sum + part.length, 0) });
        for (const part of parts) response.write(part);
        response.end();
      } else if (result instanceof JsonAnswer) send(response, result.status, result.body);
      else send(response, 200, result);
    } catch (error) {
      const failure = asRillError(error);
      const { status, body } = toHttp(failure);
      // 401 tells a client (a browser among them) how to authenticate.
      if (failure.code === 'unauthenticated') response.setHeader('www-authenticate', 'Basic realm="rill", charset="UTF-8"');
      send(response, status, body);
    }
  }

  /**
   * A request from a browser page (an Origin header) of an origin not allowed is refused; one of
   * another allowed origin gets the CORS headers that let the page read the answer.
   */
  private crossOrigin(origins: OriginPolicy, request: IncomingMessage, response: ServerResponse): boolean {
    const origin = request.headers.origin;
    if (origin === undefined) return true;
    if (!origins.allows(origin, request.headers.host)) {
      send(response, 403, toHttp(new RillError('forbidden', `pages from origin ${origin.slice(0, 200)} may not use this broker (server.allowedOrigins)`)).body);
      return false;
    }
    response.setHeader('access-control-allow-origin', origin);
    response.setHeader('vary', 'Origin');
    return true;
  }

  /** A CORS preflight: what the page's request may carry. */
  private preflight(path: string, response: ServerResponse): void {
    const allowed = METHODS.filter((m) => this.router.find(m, path) !== null);
    if (allowed.length === 0) throw new RillError('not-found', `nothing at ${path}`);
    response.writeHead(204, {
      'access-control-allow-methods': allowed.join(', '),
      'access-control-allow-headers': 'authorization, content-type',
      'access-control-max-age': String(PREFLIGHT_MAX_AGE_S),
    });
    response.end();
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
  // Encoded once: measuring the text for its length and then writing it would walk a pull's megabytes twice.
  const bytes = Buffer.from(JSON.stringify(body), 'utf8');
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  response.end(bytes);
}
