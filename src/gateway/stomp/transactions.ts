import { RillError } from '../../errors/index.js';
import type { Frame } from '../../protocol/stomp/index.js';

/** A connection's open transactions: the SENDs each holds until COMMIT or ABORT. */
export class Transactions {
  private readonly open = new Map<string, Frame[]>();

  constructor(private readonly maxFrames: number) {}

  begin(id: string): void {
    if (this.open.has(id)) throw new RillError('name-taken', `transaction "${id}" is already open`);
    this.open.set(id, []);
  }

  /** Holds a SEND; its body is copied, since the parser's body is a view into the socket's buffer. */
  hold(id: string, frame: Frame): void {
    const frames = this.open.get(id);
    if (frames === undefined) throw new RillError('unknown-transaction', `transaction "${id}" is not open (BEGIN it first)`);
    if (frames.length >= this.maxFrames) throw new RillError('too-large', `transaction "${id}" holds more than ${this.maxFrames} frames`);
    frames.push({ command: frame.command, headers: frame.headers, body: Buffer.from(frame.body) });
  }

  /** Ends a transaction (COMMIT or ABORT) and hands back what it held. */
  end(id: string): Frame[] {
    const frames = this.open.get(id);
    if (frames === undefined) throw new RillError('unknown-transaction', `transaction "${id}" is not open`);
    this.open.delete(id);
    return frames;
  }

  clear(): void {
    this.open.clear();
  }
}
