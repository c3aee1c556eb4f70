/**
 * Every STOMP destination Rill understands. Publishing: `/producer/publish/<topic>` (the seed's
 * path) or `/topic/<topic>`. Subscribing: `/topic/acknowledgment/<topic>` (also spelled
 * `acknowledgement`) for one's own publish acknowledgments, `/topic/<topic>` for a live tail.
 */
export type Destination =
  | { kind: 'publish'; topic: string }
  | { kind: 'acknowledgments'; topic: string }
  | { kind: 'topic'; topic: string };

const PUBLISH_PREFIX = '/producer/publish/';
const ACK_PREFIXES = ['/topic/acknowledgment/', '/topic/acknowledgement/'];
const TOPIC_PREFIX = '/topic/';

export function parseDestination(destination: string): Destination | null {
  if (destination.startsWith(PUBLISH_PREFIX)) return { kind: 'publish', topic: destination.slice(PUBLISH_PREFIX.length) };
  for (const prefix of ACK_PREFIXES) {
    if (destination.startsWith(prefix)) return { kind: 'acknowledgments', topic: destination.slice(prefix.length) };
  }
  if (destination.startsWith(TOPIC_PREFIX)) return { kind: 'topic', topic: destination.slice(TOPIC_PREFIX.length) };
  return null;
}

export function acknowledgmentDestination(topic: string): string {
  return `/topic/acknowledgment/${topic}`;
}

export function topicDestination(topic: string): string {
  return `/topic/${topic}`;
}
