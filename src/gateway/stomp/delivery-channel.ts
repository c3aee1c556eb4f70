import type { EscapeMode, HeaderInput } from '../../protocol/stomp/index.js';

/**
 * What a subscription may do with its connection: write frames, batch them into one system call,
 * and ask whether more may be written now (the session is connected and the socket not backed
 * up). Subscriptions never see the session itself.
 */
export interface DeliveryChannel {
  readonly sessionId: string;
  /** The negotiated STOMP version: how header values are escaped. */
  readonly version: EscapeMode;
  /** The session is connected: frames written now reach the client. */
  readonly open: boolean;
  /** Open, and the socket holds less than the high-water mark of unsent bytes. */
  readonly writable: boolean;
  sendFrame(command: string, headers: HeaderInput, body?: Buffer | string): void;
  /** A frame already encoded for this connection's version. */
  sendBytes(frame: Buffer): void;
  /** Holds writes until uncork(), so that a burst of frames leaves in one system call. */
  cork(): void;
  uncork(): void;
}
