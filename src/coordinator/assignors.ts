export type AssignorName = 'range' | 'roundrobin' | 'sticky';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface AssignableMember {
  id: string;
  topics: ReadonlySet<string>;
}

export type Assignment = Map<string, TopicPartition[]>;

/** What each member owned before: the sticky assignor keeps it where it can. */
export type PreviousAssignment = ReadonlyMap<string, readonly TopicPartition[]>;

export function tpKey(tp: TopicPartition): string {
  return `${tp.topic}\u0000${tp.partition}`;
}

function sortedMembers(members: AssignableMember[]): AssignableMember[] {
  return [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function emptyAssignment(members: AssignableMember[]): Assignment {
  return new Map(members.map((m) => [m.id, []]));
}

/** Kafka's RangeAssignor: per topic, contiguous ranges of partitions, the first members one more. */
function range(members: AssignableMember[], partitions: ReadonlyMap<string, number>): Assignment {
  const result = emptyAssignment(members);
  for (const [topic, count] of [...partitions].sort(([a], [b]) => a.localeCompare(b))) {
    const eligible = sortedMembers(members.filter((m) => m.topics.has(topic)));
    if (eligible.length === 0) continue;
    const base = Math.floor(count / eligible.length);
    const extra = count % eligible.length;
    let next = 0;
    eligible.forEach((member, i) => {
      const take = base + (i < extra ? 1 : 0);
      for (let p = 0; p < take; p++) result.get(member.id)!.push({ topic, partition: next++ });
    });
  }
  return result;
}

/** Kafka's RoundRobinAssignor: every partition of every topic, dealt in turn to the members subscribed. */
function roundRobin(members: AssignableMember[], partitions: ReadonlyMap<string, number>): Assignment {
  const result = emptyAssignment(members);
  const ordered = sortedMembers(members);
  let turn = 0;
  for (const [topic, count] of [...partitions].sort(([a], [b]) => a.localeCompare(b))) {
    for (let partition = 0; partition < count; partition++) {
      for (let tries = 0; tries < ordered.length; tries++) {
        const member = ordered[turn++ % ordered.length]!;
        if (member.topics.has(topic)) {
          result.get(member.id)!.push({ topic, partition });
          break;
        }
      }
    }
  }
  return result;
}

/**
 * Kafka's StickyAssignor, simplified: keep every partition where it was as long as its owner is
 * still subscribed and not above its fair share, then give the rest to the least-loaded eligible
 * members. Loads end up within one of each other when members share their subscriptions.
 */
function sticky(members: AssignableMember[], partitions: ReadonlyMap<string, number>, previous: PreviousAssignment): Assignment {
  const result = emptyAssignment(members);
  const byId = new Map(members.map((m) => [m.id, m]));
  const all: TopicPartition[] = [];
  for (const [topic, count] of [...partitions].sort(([a], [b]) => a.localeCompare(b))) {
    for (let partition = 0; partition < count; partition++) all.push({ topic, partition });
  }
  const eligibleCount = (tp: TopicPartition) => members.filter((m) => m.topics.has(tp.topic)).length;
  const assignable = all.filter((tp) => eligibleCount(tp) > 0);
  const ceiling = members.length === 0 ? 0 : Math.ceil(assignable.length / members.length);
  const taken = new Set<string>();
  for (const [memberId, owned] of previous) {
    const member = byId.get(memberId);
    if (member === undefined) continue;
    for (const tp of owned) {
      const list = result.get(memberId)!;
      if (!member.topics.has(tp.topic) || tp.partition >= (partitions.get(tp.topic) ?? 0)) continue;
      if (list.length >= ceiling || taken.has(tpKey(tp))) continue;
      list.push(tp);
      taken.add(tpKey(tp));
    }
  }
  for (const tp of assignable) {
    if (taken.has(tpKey(tp))) continue;
    let best: AssignableMember | undefined;
    for (const member of sortedMembers(members)) {
      if (!member.topics.has(tp.topic)) continue;
      if (best === undefined || result.get(member.id)!.length < result.get(best.id)!.length) best = member;
    }
    result.get(best!.id)!.push(tp);
    taken.add(tpKey(tp));
  }
  // Owners kept above the floor may leave others below it: move partitions until loads differ by one at most.
  for (;;) {
    const loads = sortedMembers(members).map((m) => ({ m, list: result.get(m.id)! }));
    const first = loads[0];
    if (first === undefined) break;
    const heaviest = loads.reduce((a, b) => (b.list.length > a.list.length ? b : a), first);
    const lightest = loads.reduce((a, b) => (b.list.length < a.list.length ? b : a), first);
    if (heaviest.list.length - lightest.list.length <= 1) break;
    const index = heaviest.list.findIndex((tp) => lightest.m.topics.has(tp.topic));
    if (index === -1) break;
    lightest.list.push(...heaviest.list.splice(index, 1));
  }
  for (const list of result.values()) list.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  return result;
}

/** Splits the partitions of the members' topics between the members. */
export function assign(assignor: AssignorName, members: AssignableMember[], partitions: ReadonlyMap<string, number>, previous: PreviousAssignment): Assignment {
  if (assignor === 'range') return range(members, partitions);
  if (assignor === 'roundrobin') return roundRobin(members, partitions);
  return sticky(members, partitions, previous);
}
