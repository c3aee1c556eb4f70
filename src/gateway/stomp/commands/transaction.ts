import { asRillError, RillError } from '../../../errors/index.js';
import type { Frame } from '../../../protocol/stomp/index.js';
import { PublishError, ReceiptCountdown, type PublishRequest } from '../../publishing/index.js';
import { DecidedTransactionError } from '../../../transactions/index.js';
import type { CommandContext } from '../command-context.js';
import type { Subscription, TransactionalAcks } from '../subscriptions/subscription.js';
import type { HeldSettle } from '../transactions.js';
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
 * on, and the TransactionCoordinator stores them atomically, across partitions and crashes. ACKs
 * of group messages inside it commit the group's offsets as part of the same transaction (the
 * consume-transform-produce loop, exactly once); a member that lost the partition since is fenced
 * and nothing is committed. Its RECEIPT waits until all of it is stored.
 */
export function handleCommit(context: CommandContext, frame: Frame): void {
  const id = transactionId(context, frame);
  if (id === undefined) return;
  const { sends, settles } = context.transactions.end(id);
  const requests: PublishRequest[] = [];
  for (const held of sends) {
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
  // Group ACKs become offset commits of the transaction; other ACKs and NACKs are applied once it is stored.
  const groupAcks = new Map<Subscription, number[]>();
  const afterCommit: HeldSettle[] = [];
  for (const settle of settles) {
    if (settle.accepted && settle.subscription.prepareTransaction !== undefined) {
      const sequences = groupAcks.get(settle.subscription);
      if (sequences === undefined) groupAcks.set(settle.subscription, [settle.sequence]);
      else sequences.push(settle.sequence);
    } else afterCommit.push(settle);
  }
  const acks: TransactionalAcks[] = [];
  try {
    for (const [subscription, sequences] of groupAcks) acks.push(subscription.prepareTransaction!(sequences));
  } catch (error) {
    // Another subscription's messages were the problem, not these: delivered again, not counted.
    for (const prepared of acks) prepared.aborted(false);
    const failure = asRillError(error);
    context.fail(new RillError(failure.code, `transaction "${id}" was not committed, nothing was published: ${failure.message}`), frame.headers.receipt);
    return;
  }
  const settleRest = (): void => {
    for (const { subscription, sequence, accepted } of afterCommit) subscription.settle(sequence, accepted);
  };
  if (requests.length === 0 && acks.length === 0) {
    settleRest();
    context.receipt(frame.headers.receipt);
    return;
  }
  const receipt = frame.headers.receipt ?? null;
  const later = context.later(receipt);
  // One more to count down than messages when offsets are committed: the RECEIPT waits for them too.
  const countdown = new ReceiptCountdown(requests.length + (acks.length > 0 ? 1 : 0), receipt, later.place);
  context
    .commitTransaction(
      requests,
      countdown,
      acks.map((prepared) => prepared.offsets),
    )
    .then(
      () => {
        for (const prepared of acks) prepared.committed();
        settleRest();
        if (acks.length > 0 && --countdown.remaining === 0 && receipt !== null) later.receipt();
      },
      (error: unknown) => {
        const failure = asRillError(error);
        // Decided, it will be stored (at the next start): its inputs are settled, not delivered again.
        // Otherwise they are delivered again, uncounted: a rebalance or the broker failed, not the consumer.
        for (const prepared of acks)
          if (error instanceof DecidedTransactionError) prepared.committed();
          else prepared.aborted(false);
        // A failed message may have failed the COMMIT already (an answer's first failure is the one sent).
        const outcome =
          error instanceof DecidedTransactionError
            ? 'was decided and will be completed when the broker starts again (a resend is answered as duplicates)'
            : 'was not committed';
        later.fail(new RillError(failure.code, `transaction "${id}" ${outcome}: ${failure.message}`));
      },
    );
}

/** ABORT: nothing is published; the group messages it ACKed or NACKed count as rejected and are delivered again. */
export function handleAbort(context: CommandContext, frame: Frame): void {
  const id = transactionId(context, frame);
  if (id === undefined) return;
  const { settles } = context.transactions.end(id);
  for (const { subscription, sequence } of settles) if (subscription.prepareTransaction !== undefined) subscription.settle(sequence, false);
  context.receipt(frame.headers.receipt);
}
