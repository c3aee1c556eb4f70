import type { RillError } from '../../errors/index.js';

/** Where a producer hears of each message's fate when it subscribed to its acknowledgments. */
export interface AcknowledgmentSink {
  /** `duplicate`: nothing was stored now; the message was already, at this partition and offset. */
  stored(messageId: string, partition: number, offset: number, timestamp: number, duplicate: boolean): void;
  failed(messageId: string | null, partition: number | null, error: RillError): void;
}

/**
 * What the publish path needs of the connection a message came from: whether it is still there,
 * its acknowledgment subscriptions, and how to answer it. The STOMP session implements it.
 * Answers name the frame they answer by its `place`, its number in the connection's order of
 * answers, so that they reach the client in the order of the frames, not of storage.
 */
export interface Producer {
  readonly open: boolean;
  acknowledgments(topic: string): AcknowledgmentSink | undefined;
  /** The frame at `place` is done (its message, or every message of its transaction, stored): its RECEIPT goes out in turn. */
  answered(place: number): void;
  /** An ERROR for the frame at `place`, in turn; then the connection closes. */
  failed(place: number, error: RillError): void;
  /** One publish handed to the broker has been answered; `owedBytes` is what the publish said its answers would take. */
  settled(owedBytes: number): void;
}
