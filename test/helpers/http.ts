/** POSTs (or sends another method with) a JSON body and returns status and parsed answer. */
// biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field in each test, against the zod contract in one
export async function call(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text.length > 0 ? JSON.parse(text) : null };
}

export function httpBase(port: number): string {
  return `http://127.0.0.1:${port}`;
}

export interface PartitionOffsets {
  partition: number;
  logStartOffset: number;
  logEndOffset: number;
}

/** A topic's partitions with their offsets (GET /v1/topics/<topic>), or null when there is no such topic. */
export async function topicOffsets(base: string, topic: string): Promise<PartitionOffsets[] | null> {
  const answer = await call(base, 'GET', `/v1/topics/${encodeURIComponent(topic)}`);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`GET /v1/topics/${topic} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body.partitions as PartitionOffsets[];
}

/** How many messages a topic holds (the sum of its partitions' log end offsets); 0 when there is no such topic. */
export async function storedCount(base: string, topic: string): Promise<number> {
  const partitions = await topicOffsets(base, topic);
  return partitions === null ? 0 : partitions.reduce((sum, p) => sum + p.logEndOffset - p.logStartOffset, 0);
}

export interface GroupMember {
  member: string;
  generation: number;
  assignment: Array<{ topic: string; partition: number }>;
  topics: string[];
  instanceId: string | null;
}

export interface GroupDescription {
  group: string;
  generation: number;
  members: GroupMember[];
}

/** GET /v1/groups/<group>; null when there is no such group. */
export async function describeGroup(base: string, group: string): Promise<GroupDescription | null> {
  const answer = await call(base, 'GET', `/v1/groups/${encodeURIComponent(group)}`);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`GET /v1/groups/${group} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body as GroupDescription;
}

/** The group's committed offset in a partition (from GET /v1/groups/<group>/lag; 0 when none is committed). */
export async function committedOffset(base: string, group: string, topic: string, partition: number): Promise<number> {
  const answer = await call(base, 'GET', `/v1/groups/${encodeURIComponent(group)}/lag`);
  if (answer.status !== 200) throw new Error(`GET /v1/groups/${group}/lag answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  const row = (answer.body.partitions as Array<{ topic: string; partition: number; offset: number }>).find(
    (p) => p.topic === topic && p.partition === partition,
  );
  return row?.offset ?? 0;
}
