/**
 * Every STOMP destination Rill understands. Publishing: `/producer/publish/<topic>` (the seed's
 * path) or `/topic/<topic>`. Subscribing: `/topic/acknowledgment/<topic>` (also spelled
 * `acknowledgement`) for one's own publish acknowledgments, `/topic/<topic>` for a live tail,
 * `/group/<group>/<topic>` to consume as a member of a consumer group, and the reply destination
 * (`/user/replies` by default) for answers to requests SENT to `/request/<operation>`. A SEND to
 * `/session/token` replaces the connection's token with a fresh one before it expires.
 */
export type Destination =
  | { kind: 'publish'; topic: string }
  | { kind: 'group'; group: string; topic: string }
  | { kind: 'request'; operation: string }
  | { kind: 'user'; name: string }
  | { kind: 'session-token' }
  | { kind: 'acknowledgments'; topic: string }
  | { kind: 'topic'; topic: string };

const PUBLISH_PREFIX = '/producer/publish/';
const GROUP_PREFIX = '/group/';
const REQUEST_PREFIX = '/request/';
const USER_PREFIX = '/user/';
const ACK_PREFIXES = ['/topic/acknowledgment/', '/topic/acknowledgement/'];
const TOPIC_PREFIX = '/topic/';
const SESSION_TOKEN_DESTINATION = '/session/token';

export function parseDestination(destination: string): Destination | null {
  if (destination.startsWith(PUBLISH_PREFIX)) return { kind: 'publish', topic: destination.slice(PUBLISH_PREFIX.length) };
  for (const prefix of ACK_PREFIXES) {
    if (destination.startsWith(prefix)) return { kind: 'acknowledgments', topic: destination.slice(prefix.length) };
  }
  if (destination.startsWith(TOPIC_PREFIX)) return { kind: 'topic', topic: destination.slice(TOPIC_PREFIX.length) };
  if (destination.startsWith(GROUP_PREFIX)) {
    const rest = destination.slice(GROUP_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash > 0) return { kind: 'group', group: rest.slice(0, slash), topic: rest.slice(slash + 1) };
  }
  if (destination === SESSION_TOKEN_DESTINATION) return { kind: 'session-token' };
  if (destination.startsWith(REQUEST_PREFIX)) return { kind: 'request', operation: destination.slice(REQUEST_PREFIX.length) };
  if (destination.startsWith(USER_PREFIX) && destination.length > USER_PREFIX.length) return { kind: 'user', name: destination };
  return null;
}

export function acknowledgmentDestination(topic: string): string {
  return `/topic/acknowledgment/${topic}`;
}

export function topicDestination(topic: string): string {
  return `/topic/${topic}`;
}

export function groupDestination(group: string, topic: string): string {
  return `/group/${group}/${topic}`;
}

export const DEFAULT_REPLY_DESTINATION = '/user/replies';
