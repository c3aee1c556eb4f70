import { assign, type AssignableMember, type Assignment, type AssignorName, type PreviousAssignment, type TopicPartition } from './assignors.js';

/** A topic as assignment sees it: its partitions, of every priority lane. */
export interface AssignedTopic {
  partitions: number;
  lanes: number;
}

/**
 * Assigns with priority lanes kept together: the assignor shares out a laned topic's key slots,
 * and a member given a slot owns it in every lane, so that one member sees all of a key's
 * messages, in every priority, and can deliver the higher ones first.
 */
export function assignWithLanes(
  assignor: AssignorName,
  members: AssignableMember[],
  topics: ReadonlyMap<string, AssignedTopic>,
  previous: PreviousAssignment,
): Assignment {
  const slots = new Map<string, number>();
  for (const [name, { partitions, lanes }] of topics) slots.set(name, lanes > 1 ? partitions / lanes : partitions);
  const laned = (topic: string): AssignedTopic | undefined => {
    const found = topics.get(topic);
    return found !== undefined && found.lanes > 1 ? found : undefined;
  };
  // The previous assignment in slots: a laned partition is its slot.
  const previousSlots = new Map<string, TopicPartition[]>();
  for (const [member, assignment] of previous) {
    const seen = new Set<string>();
    const list: TopicPartition[] = [];
    for (const tp of assignment) {
      const topic = laned(tp.topic);
      const slot = topic === undefined ? tp.partition : tp.partition % slots.get(tp.topic)!;
      const key = `${tp.topic}\u0000${slot}`;
      if (seen.has(key)) continue;
      seen.add(key);
      list.push({ topic: tp.topic, partition: slot });
    }
    previousSlots.set(member, list);
  }
  const bySlot = assign(assignor, members, slots, previousSlots);
  const result: Assignment = new Map();
  for (const [member, assignment] of bySlot) {
    result.set(
      member,
      assignment.flatMap((tp) => {
        const topic = laned(tp.topic);
        if (topic === undefined) return [tp];
        const count = slots.get(tp.topic)!;
        return Array.from({ length: topic.lanes }, (_, lane) => ({ topic: tp.topic, partition: lane * count + tp.partition }));
      }),
    );
  }
  return result;
}
