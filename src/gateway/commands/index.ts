import type { Frame } from '../../protocol/stomp/index.js';
import type { StompSession } from '../session.js';
import { handleAck, handleNack } from './ack.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handleSend } from './send.js';
import { handleSubscribe, handleUnsubscribe } from './subscribe.js';
import { handleAbort, handleBegin, handleCommit } from './transaction.js';

export type CommandHandler = (session: StompSession, frame: Frame) => void;

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
