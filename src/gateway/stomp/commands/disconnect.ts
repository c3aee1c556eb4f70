import type { Frame } from '../../../protocol/stomp/index.js';
import type { CommandContext } from '../command-context.js';

/** DISCONNECT: the RECEIPT follows every earlier frame's effect, so it waits for pending publishes. */
export function handleDisconnect(context: CommandContext, frame: Frame): void {
  context.disconnect(frame.headers.receipt ?? null);
}
