import type { RillError } from '../../errors/index.js';

/** Where a producer hears of each message's fate when it subscribed to its acknowledgments. */
export interface AcknowledgmentSink {
  stored(messageId: string, partition: number, offset: number, timestamp: number): void;
  failed(messageId: string | null, partition: number | null, error: RillError): void;
}

/**
 * What the publish path needs of the connection a message came from: whether it is still there,
 * its acknowledgment subscriptions, and how to answer it. The STOMP session implements it.
 */
export interface Producer {
  readonly open: boolean;
  acknowledgments(topic: string): AcknowledgmentSink | undefined;
  receipt(receipt: string | null | undefined): void;
  /** An ERROR frame, then the connection closes. */
  fail(error: RillError, receipt: string | null | undefined): void;
  /** One publish handed to the broker has been answered. */
  settled(): void;
}
