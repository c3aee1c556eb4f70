import type { RecordHeaders } from '../storage/index.js';
import type { Topic } from './front/topic-registry.js';

/** A message ready to store: its topic and partition chosen, its fields read (the publish path's work). */
export interface PreparedMessage {
  topic: Topic;
  partition: number;
  key: string | null;
  messageId: string;
  /** The producer named the messageID (false: the broker made one up), so a resend can be recognised. */
  messageIdGiven: boolean;
  timestamp: number;
  headers: RecordHeaders | null;
  /** Null: a tombstone, the deletion of its key in a compacted topic. */
  value: Buffer | null;
}
