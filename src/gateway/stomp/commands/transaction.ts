import { RillError } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import { PublishError, ReceiptCountdown, type PublishRequest } from '../../publishing/index.js';
import type { CommandContext } from '../command-context.js';
import { prepareSend } from './send.js';

function transactionId(context: CommandContext, frame: Frame): string | undefined {
  const id = frame.headers.transaction;
  if (id === undefined) context.fail(new RillError('invalid-request', `${frame.command} needs a transaction header`), frame.headers.receipt);
  return id;
}

export function handleBegin(context: CommandContext, frame: Frame): void {
  const id = transactionId(context, frame);
  if (id === undefined) return;
  context.transactions.begin(id);
  context.receipt(frame.headers.receipt);
}

/**
 * COMMIT publishes every SEND of the transaction or none: all are checked before any is handed
 * on, and the TransactionCoordinator stores them atomically, across partitions and crashes. Its
 * RECEIPT waits until all of them are stored.
 */
export function handleCommit(context: CommandContext, frame: Frame): void {
  const id = transactionId(context, frame);
  if (id === undefined) return;
  const frames = context.transactions.end(id);
  const requests: PublishRequest[] = [];
  for (const held of frames) {
    try {
      requests.push(prepareSend(context, held));
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      const subject = error.messageId === null ? `message ${requests.length + 1}` : `message "${error.messageId}"`;
      context.fail(
        new RillError(error.code, `transaction "${id}" was not committed, nothing was published: ${subject}: ${error.message}`),
        frame.headers.receipt,
      );
      return;
    }
  }
  if (requests.length === 0) {
    context.receipt(frame.headers.receipt);
    return;
  }
  const receipt = frame.headers.receipt ?? null;
  const countdown = new ReceiptCountdown(requests.length, receipt, context.later(receipt).place);
  context.commitTransaction(requests, countdown);
}

export function handleAbort(context: CommandContext, frame: Frame): void {
  const id = transactionId(context, frame);
  if (id === undefined) return;
  context.transactions.end(id);
  context.receipt(frame.headers.receipt);
}
