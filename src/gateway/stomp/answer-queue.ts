import type { RillError } from '../../errors/index.js';
import type { HeaderInput } from '../../protocol/stomp/index.js';

/** What an ERROR frame carries beyond its error: another body, more headers. */
export interface ErrorDetails {
  body?: string;
  headers?: HeaderInput;
}

/** How the queue writes the answers it lets go; the session implements it. */
export interface AnswerWriter {
  receipt(receipt: string): void;
  /** Writes the ERROR, then closes the connection: nothing is answered after it. */
  error(error: RillError, receipt: string | null, details: ErrorDetails | undefined): void;
  /** DISCONNECT's turn: its RECEIPT, when it asked for one, then the connection closes. */
  close(receipt: string | null): void;
}

// What a place in the queue holds. Odd values are ready to be written.
const WAITING = 0;
const RECEIPT = 1;
const CLOSE_WAITING = 2;
const CLOSE = 3;
const ERROR = 5;

const INITIAL_CAPACITY = 16;
/** A queue this long or longer goes back to its first size when it empties. */
const SHRINK_CAPACITY = 4096;

/**
 * A connection's answers (RECEIPTs, an ERROR, DISCONNECT's close) in the order of the frames that
 * asked for them, whatever the order their work finishes in: a SEND's storage on one worker may
 * answer before an earlier SEND's on another, a SUBSCRIBE waits for its start offsets, a COMMIT
 * for all of its messages. Each frame read gets a number (`next`); a frame answered later keeps
 * its place with `reserve`, and its answer is written once every earlier place has been.
 *
 * Cheap on purpose: a frame with nothing to answer costs the counter; a frame answered at once
 * when nothing waits is written at once; only answers that wait take a place, in a ring that grows
 * as needed (numbers and flags in typed arrays, no object per answer).
 *
 * An ERROR is the last answer: a frame's ERROR waits for the answers of earlier frames, then goes,
 * and every later answer is dropped (the connection closes). A frame that asked for no receipt has
 * no place, yet may fail later (its message could not be stored): its ERROR is put where the frame
 * was read, before the answers of later frames that are still waiting.
 */
export class AnswerQueue {
  private frame = 0;
  private capacity = INITIAL_CAPACITY;
  private frames = new Float64Array(INITIAL_CAPACITY);
  private states = new Uint8Array(INITIAL_CAPACITY);
  private receipts: Array<string | null> = new Array<string | null>(INITIAL_CAPACITY).fill(null);
  /** The ERRORs waiting for their turn, by frame number (at most a few: the first ends the connection). */
  private readonly errors = new Map<number, { error: RillError; details: ErrorDetails | undefined }>();
  private head = 0;
  private count = 0;
  private finished = false;

  constructor(private readonly writer: AnswerWriter) {}

  /** A frame was read: its number, which is its place in the order of answers. */
  next(): number {
    return ++this.frame;
  }

  /** The number of the frame read last (0 before any). */
  get current(): number {
    return this.frame;
  }

  /** Answers not written yet: waiting for their own work or for an earlier answer. */
  get waiting(): number {
    return this.count;
  }

  /**
   * Keeps the current frame's place for an answer given later (`ready` or `fail`) and returns the
   * place. A frame that asked for no receipt takes no room: the number alone lets a later ERROR find
   * its place.
   */
  reserve(receipt: string | null | undefined): number {
    if (receipt !== undefined && receipt !== null && !this.finished) this.push(this.frame, WAITING, receipt);
    return this.frame;
  }

  /** DISCONNECT: the connection closes in the current frame's turn, after its RECEIPT if it asked for one; `ready` when it may. */
  reserveClose(receipt: string | null | undefined): number {
    if (!this.finished) this.push(this.frame, CLOSE_WAITING, receipt ?? null);
    return this.frame;
  }

  /** The current frame's RECEIPT, due at once: written now, unless earlier answers are still waiting. */
  receipt(receipt: string | null | undefined): void {
    if (receipt === undefined || receipt === null || this.finished) return;
    if (this.count === 0) this.writer.receipt(receipt);
    else this.push(this.frame, RECEIPT, receipt);
  }

  /**
   * The work of the frame at `place` is done: its RECEIPT (or DISCONNECT's close) goes out in its
   * turn. A place that holds nothing (no receipt asked), or was answered already, is left as it is.
   */
  ready(place: number): void {
    const at = this.find(place);
    if (at < 0) return;
    const index = (this.head + at) & (this.capacity - 1);
    const state = this.states[index];
    if (state === WAITING) this.states[index] = RECEIPT;
    else if (state === CLOSE_WAITING) this.states[index] = CLOSE;
    else return;
    if (at === 0) this.release();
  }

  /**
   * An ERROR answers the frame at `place`: it goes once the answers of earlier frames have, then the
   * connection closes. The first answer a place gets stands. `receipt` is for a frame that kept no
   * place (its `receipt-id`, if it had one); a reserved place already knows its own.
   */
  fail(place: number, error: RillError, receipt?: string | null, details?: ErrorDetails): void {
    if (this.finished) return;
    let at = this.find(place);
    if (at >= 0) {
      const index = (this.head + at) & (this.capacity - 1);
      const state = this.states[index];
      if (state !== WAITING && state !== CLOSE_WAITING) return;
      this.states[index] = ERROR;
    } else {
      at = this.after(place);
      this.insert(at, place, ERROR, receipt ?? null);
    }
    this.errors.set(place, { error, details });
    if (at === 0) this.release();
  }

  /** The connection is gone: nothing more is written, what waits is dropped. */
  discard(): void {
    this.finished = true;
    this.count = 0;
    this.head = 0;
    this.receipts.fill(null);
    this.errors.clear();
  }

  /** Writes the answers at the head that are ready, up to the first that is not. */
  private release(): void {
    const mask = this.capacity - 1;
    while (this.count > 0) {
      const index = this.head;
      const state = this.states[index]!;
      if ((state & 1) === 0) break;
      const receipt = this.receipts[index]!;
      this.receipts[index] = null;
      this.head = (index + 1) & mask;
      this.count--;
      if (state === RECEIPT) {
        if (receipt !== null) this.writer.receipt(receipt);
        continue;
      }
      // An ERROR or DISCONNECT's close: the last answer on this connection.
      const failure = state === ERROR ? this.errors.get(this.frames[index]!) : undefined;
      this.discard();
      if (failure !== undefined) this.writer.error(failure.error, receipt, failure.details);
      else this.writer.close(receipt);
      return;
    }
    if (this.count === 0) {
      this.head = 0;
      if (this.capacity >= SHRINK_CAPACITY) this.resize(INITIAL_CAPACITY);
    }
  }

  /** The position (from the head) of the place of frame `place`, or -1. */
  private find(place: number): number {
    let low = 0;
    let high = this.count - 1;
    const mask = this.capacity - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const frame = this.frames[(this.head + middle) & mask]!;
      if (frame === place) return middle;
      if (frame < place) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }

  /** The position (from the head) of the first place of a frame after `place`. */
  private after(place: number): number {
    let low = 0;
    let high = this.count;
    const mask = this.capacity - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.frames[(this.head + middle) & mask]! <= place) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private push(frame: number, state: number, receipt: string | null): void {
    if (this.count === this.capacity) this.resize(this.capacity * 2);
    const index = (this.head + this.count) & (this.capacity - 1);
    this.frames[index] = frame;
    this.states[index] = state;
    this.receipts[index] = receipt;
    this.count++;
  }

  /** Puts a place at position `at` from the head, moving the later ones back (rare: an ERROR for a frame that kept no place). */
  private insert(at: number, frame: number, state: number, receipt: string | null): void {
    if (this.count === this.capacity) this.resize(this.capacity * 2);
    const mask = this.capacity - 1;
    for (let k = this.count; k > at; k--) {
      const to = (this.head + k) & mask;
      const from = (this.head + k - 1) & mask;
      this.frames[to] = this.frames[from]!;
      this.states[to] = this.states[from]!;
      this.receipts[to] = this.receipts[from]!;
    }
    const index = (this.head + at) & mask;
    this.frames[index] = frame;
    this.states[index] = state;
    this.receipts[index] = receipt;
    this.count++;
  }

  /** Copies the waiting places, in order, into arrays of `capacity` (a power of two, at least `count`). */
  private resize(capacity: number): void {
    const frames = new Float64Array(capacity);
    const states = new Uint8Array(capacity);
    const receipts = new Array<string | null>(capacity).fill(null);
    const mask = this.capacity - 1;
    for (let k = 0; k < this.count; k++) {
      const from = (this.head + k) & mask;
      frames[k] = this.frames[from]!;
      states[k] = this.states[from]!;
      receipts[k] = this.receipts[from]!;
    }
    this.frames = frames;
    this.states = states;
    this.receipts = receipts;
    this.capacity = capacity;
    this.head = 0;
  }
}
