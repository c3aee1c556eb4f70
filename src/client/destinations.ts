import { invalidArgument } from './errors.js';

/*
 * The STOMP destinations the client uses (docs/protocol.md). Names are checked before they go
 * into a destination, so that a name can never reach another destination than the one meant.
 */

/** The broker's rule for topic names. */
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;
/** Group and member names: the broker takes anything but white space and `/` (which would split the destination). */
const GROUP_NAME = /^[^\s/]{1,249}$/;

export function checkTopic(topic: string): string {
  if (typeof topic !== 'string' || !TOPIC_NAME.test(topic)) throw invalidArgument(`invalid topic name "${String(topic).slice(0, 300)}": use A-Z a-z 0-9 . _ -`);
  return topic;
}

export function checkGroupName(what: string, name: string): string {
  if (typeof name !== 'string' || !GROUP_NAME.test(name)) throw invalidArgument(`invalid ${what} "${String(name).slice(0, 300)}": no spaces or slashes`);
  return name;
}

/** Publishing: the canonical body goes here. */
export const publishDestination = (topic: string): string => `/topic/${topic}`;
/** This connection's acknowledgments of what it published to the topic. */
export const acknowledgmentDestination = (topic: string): string => `/topic/acknowledgment/${topic}`;
/** A live view of the topic's log. */
export const tailDestination = (topic: string): string => `/topic/${topic}`;
/** Membership of a consumer group, with the group's messages pushed. */
export const groupDestination = (group: string, topic: string): string => `/group/${group}/${topic}`;
/** Consumer-group requests; the answers come on REPLY_DESTINATION. */
export const requestDestination = (operation: string): string => `/request/${operation}`;
export const REPLY_DESTINATION = '/user/replies';
