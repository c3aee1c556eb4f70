import { parseArgs } from 'node:util';
import { Client, type IMessage } from '@stomp/stompjs';
import { WebSocket } from 'ws';
import { cliCredentials } from './credentials.js';

interface PartitionEnd {
  partition: number;
  logEndOffset: number;
}

/** `rill tail`: subscribes to /topic/<topic> and prints each message; see the CLI usage. */
export async function runTail(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string', default: 'ws://127.0.0.1:8080/stomp' },
        from: { type: 'string', default: 'latest' },
        partition: { type: 'string' },
        'no-follow': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        user: { type: 'string' },
      },
    });
  } catch (error) {
    process.stderr.write(`rill tail: ${(error as Error).message}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const topic = positionals[0];
  if (topic === undefined) {
    process.stderr.write('rill tail: name a topic, e.g. `rill tail orders --from earliest`\n');
    return 2;
  }
  const follow = !values['no-follow'];
  const credentials = cliCredentials(values.user);
  let ends: Map<number, number> | null = null;
  if (!follow) {
    try {
      ends = await fetchEnds(values.url, topic, values.partition, credentials.authorization);
    } catch (error) {
      process.stderr.write(`rill tail: ${(error as Error).message}\n`);
      return 1;
    }
    if ([...ends.values()].every((end) => end === 0)) return 0;
  }

  return new Promise<number>((resolve) => {
    const client = new Client({
      webSocketFactory: () => new WebSocket(values.url, ['v12.stomp']),
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
      connectHeaders: credentials.connectHeaders,
    });
    const finish = (code: number): void => {
      void client.deactivate().then(() => resolve(code));
    };
    const remaining = ends === null ? null : new Map([...ends].filter(([, end]) => end > 0));
    client.onConnect = () => {
      const headers: Record<string, string> = { from: values.from, ack: 'auto' };
      if (values.partition !== undefined) headers.partition = values.partition;
      client.subscribe(
        `/topic/${topic}`,
        (message) => {
          print(message, values.json);
          if (remaining !== null) {
            const partition = Number(message.headers.partition);
            const offset = Number(message.headers.offset);
            if (offset + 1 >= (remaining.get(partition) ?? 0)) remaining.delete(partition);
            if (remaining.size === 0) finish(0);
          }
        },
        headers,
      );
    };
    client.onStompError = (frame) => {
      process.stderr.write(`rill tail: ${frame.headers.message ?? 'error from server'}\n`);
      finish(1);
    };
    client.onWebSocketError = () => {
      process.stderr.write(`rill tail: cannot connect to ${values.url}\n`);
      finish(1);
    };
    client.activate();
  });
}

/** Asks the HTTP API (on the WebSocket's host and port) where each partition ends now. */
async function fetchEnds(url: string, topic: string, partition: string | undefined, authorization: string | undefined): Promise<Map<number, number>> {
  const httpUrl = new URL(url);
  httpUrl.protocol = httpUrl.protocol === 'wss:' ? 'https:' : 'http:';
  httpUrl.pathname = `/v1/topics/${encodeURIComponent(topic)}`;
  const response = await fetch(httpUrl, { headers: authorization === undefined ? {} : { authorization } });
  if (response.status === 404) throw new Error(`topic "${topic}" does not exist`);
  if (response.status === 401) throw new Error('the broker needs credentials: pass --user and set RILL_PASSWORD (or set RILL_TOKEN)');
  if (response.status === 403) throw new Error(`not allowed to describe topic "${topic}"`);
  if (!response.ok) throw new Error(`${httpUrl} answered ${response.status}`);
  const body = (await response.json()) as { partitions: PartitionEnd[] };
  const ends = new Map<number, number>();
  for (const p of body.partitions) {
    if (partition === undefined || Number(partition) === p.partition) ends.set(p.partition, p.logEndOffset);
  }
  return ends;
}

function print(message: IMessage, json: boolean): void {
  const body = message.binaryBody;
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const { headers } = message;
  if (!json) {
    process.stdout.write(`${headers.topic}/${headers.partition}@${headers.offset} ${headers.key ?? ''} ${text}\n`);
    return;
  }
  let value: unknown = text;
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    value = parsed !== null && typeof parsed === 'object' && 'message' in parsed ? parsed.message : parsed;
  } catch {
    // not JSON: print the body as a string
  }
  const line = {
    topic: headers.topic,
    partition: Number(headers.partition),
    offset: Number(headers.offset),
    key: headers.key ?? null,
    messageID: headers['message-id'],
    timestamp: Number(headers.timestamp),
    message: value,
  };
  process.stdout.write(JSON.stringify(line) + '\n');
}
