import type { Frame } from '../../protocol/stomp/index.js';
import { PublishError, type PublishRequest } from '../publish-request.js';
import { ReceiptCountdown } from '../publish-outcome.js';
import type { StompSession } from '../session.js';
import { prepareSend, publish } from './send.js';

export function handleBegin(session: StompSession, frame: Frame): void {
  const id = frame.headers.transaction;
  if (id === undefined) return session.fail('BEGIN needs a transaction header', frame.headers.receipt);
  if (session.transactions.has(id)) return session.fail(`transaction "${id}" is already open`, frame.headers.receipt);
  session.transactions.set(id, []);
  session.sendReceipt(frame.headers.receipt);
}

/**
 * COMMIT publishes every SEND of the transaction or none: all are checked before any is handed
 * to the broker. Its RECEIPT waits until all of them are stored.
 */
export function handleCommit(session: StompSession, frame: Frame): void {
  const frames = take(session, frame, 'COMMIT');
  if (frames === undefined) return;
  const requests: PublishRequest[] = [];
  for (const held of frames) {
    try {
      requests.push(prepareSend(session, held));
    } catch (error) {
      if (!(error instanceof PublishError)) throw error;
      const subject = error.messageId === null ? `message ${requests.length + 1}` : `message "${error.messageId}"`;
      session.fail(`transaction "${frame.headers.transaction}" was not committed, nothing was published: ${subject}: ${error.message}`, frame.headers.receipt);
      return;
    }
  }
  if (requests.length === 0) {
    session.sendReceipt(frame.headers.receipt);
    return;
  }
  const countdown = new ReceiptCountdown(requests.length, frame.headers.receipt ?? null);
  for (const request of requests) publish(session, request, null, countdown);
}

export function handleAbort(session: StompSession, frame: Frame): void {
  if (take(session, frame, 'ABORT') === undefined) return;
  session.sendReceipt(frame.headers.receipt);
}

function take(session: StompSession, frame: Frame, command: string): Frame[] | undefined {
  const id = frame.headers.transaction;
  if (id === undefined) {
    session.fail(`${command} needs a transaction header`, frame.headers.receipt);
    return undefined;
  }
  const frames = session.transactions.get(id);
  if (frames === undefined) {
    session.fail(`transaction "${id}" is not open`, frame.headers.receipt);
    return undefined;
  }
  session.transactions.delete(id);
  return frames;
}
