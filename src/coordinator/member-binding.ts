import type { TopicPartition } from './assignors.js';
import type { AssignmentListener, Member } from './group.js';

/**
 * A member held by a live connection (a push subscription, a STOMP join): it does not time out
 * while held, and hears of each new assignment. Every field reads the member as it is now.
 */
export interface MemberBinding {
  readonly group: string;
  /** The member's name (a static member may have rejoined under another). */
  readonly member: string;
  readonly generation: number;
  readonly assignment: readonly TopicPartition[];
  /** The connection is done: `clean` (UNSUBSCRIBE, DISCONNECT) leaves at once, else the member may come back. */
  release(clean: boolean): void;
}

/** One connection's hold on a member; the member counts its holders. */
export class HeldMember implements MemberBinding {
  private released = false;

  constructor(
    private readonly held: Member,
    private readonly onAssignment: AssignmentListener,
    private readonly onRelease: (member: Member, clean: boolean) => void,
  ) {
    held.connections++;
    held.listeners.add(onAssignment);
  }

  get group(): string {
    return this.held.group.name;
  }

  get member(): string {
    return this.held.name;
  }

  get generation(): number {
    return this.held.group.generation;
  }

  get assignment(): readonly TopicPartition[] {
    return this.held.assignment;
  }

  release(clean: boolean): void {
    if (this.released) return;
    this.released = true;
    this.held.listeners.delete(this.onAssignment);
    this.held.connections--;
    this.onRelease(this.held, clean);
  }
}
