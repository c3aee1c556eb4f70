import type { CommandHandler } from '../command-context.js';
import { handleAck, handleNack } from './ack.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handleSend } from './send.js';
import { handleSubscribe, handleUnsubscribe } from './subscribe.js';
import { handleAbort, handleBegin, handleCommit } from './transaction.js';

/** One handler per client frame type. */
export const COMMAND_HANDLERS: Readonly<Record<string, CommandHandler>> = {
  CONNECT: handleConnect,
  STOMP: handleConnect,
  SEND: handleSend,
  SUBSCRIBE: handleSubscribe,
  UNSUBSCRIBE: handleUnsubscribe,
  ACK: handleAck,
  NACK: handleNack,
  BEGIN: handleBegin,
  COMMIT: handleCommit,
  ABORT: handleAbort,
  DISCONNECT: handleDisconnect,
};
