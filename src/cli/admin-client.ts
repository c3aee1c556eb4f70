import { z } from 'zod';
import type { BrokerAddress } from './broker-address.js';
import { BrokerRefusedError, BrokerUnreachableError, CommandFailedError } from './failures.js';

/** A request the broker has not answered in this long counts as unreachable: it is not serving. */
const REQUEST_TIMEOUT_MS = 30_000;

/** The error body of every HTTP endpoint (docs/protocol.md, Errors). */
const errorAnswer = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

/** An answer: as the broker sent it (what --json prints), and checked against what the command relies on. */
export interface Answer<T> {
  raw: unknown;
  body: T;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/** The broker's HTTP admin API, as the CLI calls it. */
export class AdminClient {
  constructor(
    private readonly address: BrokerAddress,
    private readonly authorization: string | undefined,
  ) {}

  /**
   * Calls one endpoint (`path` relative to the API's base, segments already encoded). Throws
   * BrokerUnreachableError when nothing answers, BrokerRefusedError for an error answer, and
   * CommandFailedError for an answer that is not what `schema` describes.
   */
  async call<S extends z.ZodType>(method: Method, path: string, schema: S, body?: unknown): Promise<Answer<z.output<S>>> {
    const url = new URL(path, this.address.http);
    const headers: Record<string, string> = {};
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      text = await response.text();
    } catch (error) {
      const why = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : undefined;
      throw new BrokerUnreachableError(this.address.shown, why);
    }
    const json = parseJson(text);
    if (!response.ok) {
      const refusal = errorAnswer.safeParse(json);
      if (refusal.success) throw new BrokerRefusedError(refusal.data.error.code, refusal.data.error.message, response.status);
      throw new BrokerRefusedError(
        `http-${response.status}`,
        `${method} ${url.pathname} answered ${response.status} ${text.trim().slice(0, 200)}`.trim(),
        response.status,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new CommandFailedError(
        `the broker's answer to ${method} ${url.pathname} is not what this rill expects (${z.prettifyError(parsed.error).replace(/\n/g, ' ')}): are the broker and rill the same version?`,
      );
    }
    return { raw: json, body: parsed.data };
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** A path segment: a topic or group name as it goes in a URL. */
export function segment(name: string): string {
  return encodeURIComponent(name);
}
