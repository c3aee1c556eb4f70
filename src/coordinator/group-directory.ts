import type { TopicPartition } from './assignors.js';
import type { GroupSettings } from './group.js';

/** A member as every node of a cluster sees it: which node holds it and what it subscribes to. */
export interface SharedMember {
  name: string;
  /** The node its connection (or its joins and pulls) reach. */
  node: string;
  instanceId: string | null;
  topics: string[];
  /** When its client last joined (epoch ms, its node's clock): of two members of one static instance, the later is the one that stays. */
  joinedAt: number;
}

/** A group's state shared by the nodes: the one generation, its members wherever they are, its assignment. */
export interface SharedGroupState {
  group: string;
  generation: number;
  settings: Partial<GroupSettings>;
  members: SharedMember[];
  /** Partitions by member name. */
  assignment: Record<string, TopicPartition[]>;
  /** The group was deleted (it had no members); a join makes it again. */
  deleted: boolean;
}

/**
 * The group's settings for a decision: those it was created with (`changed` false: written only if
 * no node wrote any yet), or changed on this node (`changed` true: they replace the shared ones).
 */
export interface SettingsToWrite {
  settings: Partial<GroupSettings>;
  changed: boolean;
}

/** What a decision starts from: the state before, and the members it will have. */
export interface DecisionInput {
  before: SharedGroupState;
  /** The members after this node's are put in and those of nodes gone quiet are taken out. */
  members: SharedMember[];
}

/**
 * Groups whose members may be connected to different nodes (cluster mode): the state they share
 * and the one place decisions about a group are made, so that there is exactly one decision at a
 * time per group, whichever node makes it. A node writes only its own members; a node that has
 * gone quiet for longer than a group's session timeout loses its members there, taken out by the
 * next decision any other node makes. Liveness is one write per node per interval, whatever the
 * number of members (their own heartbeats stay on the node that holds them).
 */
export interface GroupDirectory {
  readonly nodeId: string;
  /**
   * Under the group's lock: reads its state, puts `local` in place of this node's members, and
   * asks `decide` for the new assignment (null: nothing changed, keep it). A new assignment is
   * written with the next generation and every node hears of it (`onChanged`). Returns the state
   * after the decision.
   */
  decide(
    group: string,
    settings: SettingsToWrite,
    local: SharedMember[],
    decide: (input: DecisionInput) => Record<string, TopicPartition[]> | null,
  ): Promise<SharedGroupState>;
  /** Every group's generation: a node that missed a notice (its LISTEN connection died unnoticed) finds out. */
  generations(): Promise<Array<{ group: string; generation: number; deleted: boolean }>>;
  /** Every group any node decided about and no node deleted since. */
  list(): Promise<SharedGroupState[]>;
  /** The group's shared state (undefined: no node decided anything about it yet). */
  read(group: string): Promise<SharedGroupState | undefined>;
  /** Calls `listener` with the group and generation of every decision made on another node. */
  onChanged(listener: (group: string, generation: number) => void): void;
  /** Groups with members on nodes that have gone quiet for longer than the group's session timeout. */
  orphaned(): Promise<string[]>;
  /**
   * A group is being deleted: refused (group-not-empty) if a member of any node is in it. Its
   * shared state stays, marked deleted (the other nodes forget the group), so that its generations
   * keep growing if it is made again.
   */
  forget(group: string): Promise<void>;
}

/**
 * Whether `other`, a member of the same static instance as a member of `node` that joined at
 * `joinedAt`, is the later join (the client as it is now): the other is its past. A tie goes to the
 * node named last, so that every node decides the same.
 */
export function supersedes(other: Pick<SharedMember, 'joinedAt' | 'node'>, joinedAt: number, node: string): boolean {
  return other.joinedAt > joinedAt || (other.joinedAt === joinedAt && other.node > node);
}
