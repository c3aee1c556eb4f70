import type { Frame } from '../../protocol/stomp/index.js';
import type { StompSession } from '../session.js';

/** DISCONNECT: the RECEIPT follows every earlier frame's effect, so it waits for pending publishes. */
export function handleDisconnect(session: StompSession, frame: Frame): void {
  session.disconnectReceipt = frame.headers.receipt ?? null;
  session.transactions.clear();
  if (session.inflightPublishes === 0) session.finishDisconnect();
}
