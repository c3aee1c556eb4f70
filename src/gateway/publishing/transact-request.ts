import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { DeduplicatedTicket } from '../../broker/index.js';
import type { GroupCoordinator } from '../../coordinator/index.js';
import { RillError } from '../../errors/index.js';
import { PublishError, type PublishAuthorizer, type PublishRequest } from './publish-request.js';
import type { Publisher } from './publisher.js';

const name = z.string().min(1).max(249);

/**
 * The pull consumer's exactly-once step (HTTP and the STOMP request `/request/transact`): commit
 * the group offsets of what it consumed together with what it publishes, in one transaction.
 * Each publish is what a SEND would carry: a destination topic, the body, the SEND's headers.
 */
export const transactInput = z
  .object({
    member: name,
    generation: z.number().int().min(0).optional(),
    offsets: z.array(z.object({ topic: name, partition: z.number().int().min(0), offset: z.number().int().min(0) }).strict()).default([]),
    publishes: z
      .array(
        z
          .object({
            topic: name,
            body: z.string(),
            headers: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .refine((input) => input.offsets.length + input.publishes.length > 0, { message: 'a transaction needs offsets or publishes' })
  // The generation fences a member that lost a partition and got it back since it read.
  .refine((input) => input.offsets.length === 0 || input.generation !== undefined, {
    message: 'committing offsets in a transaction needs the generation the messages were pulled in',
    path: ['generation'],
  });

export type TransactInput = z.output<typeof transactInput>;

/** Where each publish of the transaction was stored (or, a resend, already was). */
export interface TransactAnswer {
  member: string;
  committed: Array<{ topic: string; partition: number; offset: number }>;
  published: Array<{ topic: string; messageId: string; partition: number; offset: number; duplicate: boolean }>;
}

/** A publish of a request, answered into the request's answer rather than to a connection. */
class RequestTicket implements DeduplicatedTicket {
  answer: { partition: number; offset: number; duplicate: boolean } | null = null;

  constructor(private readonly partition: number) {}

  settle(offset: number): void {
    // A failure reaches the caller as the transaction's.
    if (offset >= 0) this.answer = { partition: this.partition, offset, duplicate: false };
  }

  duplicate(partition: number, offset: number): void {
    this.answer = { partition, offset, duplicate: true };
  }
}

/** Runs a `transact` request: every publish and offset commit stored together, or none. */
export async function transact(
  publisher: Publisher,
  coordinator: GroupCoordinator,
  input: TransactInput,
  /** The caller's rights to publish to each topic. */
  authorize?: PublishAuthorizer,
): Promise<TransactAnswer> {
  const offsets =
    input.offsets.length === 0
      ? []
      : [coordinator.offsetsInTransaction(input.member, { offsets: () => input.offsets }, { generation: input.generation, pulled: true })];
  const requests: PublishRequest[] = input.publishes.map((publish, index) => {
    try {
      return publisher.prepare(publish.topic, { ...publish.headers }, Buffer.from(publish.body, 'utf8'), randomUUID, undefined, authorize);
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      throw new RillError(error.code, `nothing was committed: publishes[${index}]: ${error.message}`);
    }
  });
  const tickets = requests.map((request) => new RequestTicket(request.partition));
  await publisher.transact(requests, tickets, offsets);
  return {
    member: input.member,
    committed: input.offsets,
    published: requests.map((request, i) => ({ topic: request.topic.name, messageId: request.messageId, ...tickets[i]!.answer! })),
  };
}
