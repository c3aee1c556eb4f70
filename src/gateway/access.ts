import type { TopicRegistry } from '../broker/index.js';
import type { GroupCoordinator, OperationName } from '../coordinator/index.js';
import { groupResource, topicResource, type AccessNeed, type PrincipalRights } from '../security/index.js';
import type { PublishAuthorizer } from './publishing/index.js';

/*
 * What each request needs its principal to be allowed, for both front doors (STOMP requests and
 * the HTTP API), so that the two cannot drift apart. The rules themselves are src/security's.
 */

const produce = (topic: string): AccessNeed => ({ operation: 'produce', resource: topicResource(topic) });
const consume = (topic: string): AccessNeed => ({ operation: 'consume', resource: topicResource(topic) });
const join = (group: string): AccessNeed => ({ operation: 'join', resource: groupResource(group) });
const create = (topic: string): AccessNeed => ({ operation: 'create', resource: topicResource(topic) });

function groupExists(coordinator: GroupCoordinator, group: string): boolean {
  try {
    coordinator.group(group);
    return true;
  } catch {
    return false;
  }
}

/**
 * A publisher's rights as the publish path asks them: publish to the topic, and create it when it
 * is new. A producer mostly publishes to one topic: the last one allowed is remembered (while the
 * rights' decisions hold), so a SEND costs a string comparison.
 */
export function publishAuthorizer(rights: PrincipalRights, topics: Pick<TopicRegistry, 'get'>): PublishAuthorizer {
  let allowedTopic: string | null = null;
  let allowedVersion = -1;
  return (topic) => {
    if (topic === allowedTopic && rights.version === allowedVersion) return null;
    const refusal = rights.decide('produce', topicResource(topic)) ?? (topics.get(topic) === undefined ? rights.decide('create', topicResource(topic)) : null);
    if (refusal === null) {
      allowedTopic = topic;
      allowedVersion = rights.version;
    }
    return refusal;
  };
}

/** A SUBSCRIBE to a live tail: consume the topic. */
export const tailNeeds = (topic: string): AccessNeed[] => [consume(topic)];
/** A SUBSCRIBE as a group member: join the group and consume the topic. */
export const groupMemberNeeds = (group: string, topic: string): AccessNeed[] => [join(group), consume(topic)];
/** A SUBSCRIBE to one's own publish acknowledgments: publish to the topic. */
export const acknowledgmentNeeds = (topic: string): AccessNeed[] => [produce(topic)];

/** Where a request looks up its group's member and whether the topics it names exist. */
export interface AccessLookup {
  coordinator: GroupCoordinator;
  topics: Pick<TopicRegistry, 'get'>;
}

/** Subscribing to a topic that does not exist creates it (auto-create), which takes its own right. */
function subscribing(topics: Pick<TopicRegistry, 'get'>, named: readonly string[]): AccessNeed[] {
  return named.flatMap((topic) => (topics.get(topic) === undefined ? [consume(topic), create(topic)] : [consume(topic)]));
}

/**
 * A member's request acts in its group, on the topics it subscribes to, and on those it names (a
 * new subscription); an unknown member needs only the latter: the request fails as unknown.
 */
export function memberNeeds({ coordinator, topics }: AccessLookup, member: string, named: readonly string[] = []): AccessNeed[] {
  const group = coordinator.groupOfMember(member);
  const subscribed = group === undefined ? [] : [...(coordinator.group(group).members.get(member)?.topics ?? [])];
  return [...(group === undefined ? [] : [join(group)]), ...subscribed.map(consume), ...subscribing(topics, named)];
}

/** What a consumer-group operation (and `transact`) needs, from its checked input. */
export function operationNeeds(lookup: AccessLookup, operation: OperationName | 'transact', input: Record<string, unknown>): AccessNeed[] {
  const group = typeof input.group === 'string' ? input.group : undefined;
  const member = typeof input.member === 'string' ? input.member : undefined;
  const topics = Array.isArray(input.topics) ? (input.topics as string[]) : [];
  switch (operation) {
    case 'list-groups':
      return []; // the answer lists only the groups the principal may describe
    case 'create-group':
      // Settings given for a group that exists change it (and rebalance it): that is altering it.
      return Object.keys(input).some((key) => key !== 'group') && groupExists(lookup.coordinator, group!)
        ? [join(group!), { operation: 'alter', resource: groupResource(group!) }]
        : [join(group!)];
    case 'describe-group':
    case 'lag':
      return [{ operation: 'describe', resource: groupResource(group!) }];
    case 'reset-offsets':
      // A dry run changes nothing: seeing what a reset would do is describing the group.
      return [{ operation: input.dryRun === true ? 'describe' : 'reset', resource: groupResource(group!) }];
    case 'delete-group':
      return [{ operation: 'delete', resource: groupResource(group!) }];
    case 'join':
      return [join(group!), ...subscribing(lookup.topics, topics)];
    default:
      // subscribe, heartbeat, leave, pull, commit, reject, seek, transact: the member's group and topics
      return memberNeeds(lookup, member!, topics);
  }
}

/** Throws `forbidden` for the first need the principal lacks. */
export function requireAll(rights: PrincipalRights, needs: readonly AccessNeed[]): void {
  for (const need of needs) rights.require(need.operation, need.resource);
}

export type GroupList = { groups: Array<{ group: string }> };

/** A list of groups as the principal may see it: only those it may describe. */
export function visibleGroups<L extends GroupList>(rights: PrincipalRights, list: L): L {
  return { ...list, groups: list.groups.filter(({ group }) => rights.may('describe', groupResource(group))) };
}
