import net from 'node:net';

/** One connection through the proxy: the client's side (`near`) and the server's (`far`). */
export interface ProxiedPair {
  near: net.Socket;
  far: net.Socket;
  /** What the client sent while the pair was stalled, not yet passed on. */
  held: Buffer[];
  stalled: boolean;
  /** What the server sends is dropped (see silence). */
  deaf: boolean;
}

/**
 * A TCP proxy in front of a server, for faults only one side sees: connections cut on the client's
 * side (the server's sessions live on), or what clients send held back (as a network that stopped
 * passing packets, without a reset).
 */
export class TcpProxy {
  readonly pairs: ProxiedPair[] = [];
  /** Pairs cut on the client's side, their server's side still open. */
  private readonly cut: ProxiedPair[] = [];
  private stalling = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(host: string, port: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = net.createServer((near) => proxy!.accept(near, host, port));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /** `url` with its host and port this proxy's. */
  urlFor(url: string): string {
    const proxied = new URL(url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(this.port);
    return proxied.toString();
  }

  private accept(near: net.Socket, host: string, port: number): void {
    const far = net.connect(port, host);
    near.on('error', () => {});
    far.on('error', () => {});
    const pair: ProxiedPair = { near, far, held: [], stalled: this.stalling, deaf: false };
    near.on('data', (chunk: Buffer) => {
      if (pair.stalled) pair.held.push(chunk);
      else far.write(chunk);
    });
    far.on('data', (chunk: Buffer) => {
      if (!pair.deaf) near.write(chunk);
    });
    near.on('close', () => far.destroy());
    this.pairs.push(pair);
  }

  /** Holds what clients send, on every connection and on new ones, until released. */
  stall(): void {
    this.stalling = true;
    for (const pair of this.pairs) pair.stalled = true;
  }

  /** Passes on what the pairs `which` picks held, and from then on what they send (all pairs and new ones when none is given). */
  release(which?: (pair: ProxiedPair) => boolean): void {
    if (which === undefined) this.stalling = false;
    for (const pair of this.pairs) {
      if (!pair.stalled || (which !== undefined && !which(pair))) continue;
      pair.stalled = false;
      for (const chunk of pair.held.splice(0)) pair.far.write(chunk);
    }
  }

  /**
   * The connections open now go silent for good, without a reset, as in a network partition:
   * what the server sends is dropped, and with `requests` what clients send too, and a client that
   * ends its connection leaves the server's side open, its session alive. Connections made from
   * now on pass everything (a new primary at the same address).
   */
  silence({ requests }: { requests: boolean }): void {
    for (const pair of this.pairs) {
      pair.deaf = true;
      if (requests) pair.stalled = true;
      // The client's reset never reaches the server either: its sessions live on (until close).
      pair.near.removeAllListeners('close');
    }
  }

  /** Cuts every connection on the client's side only: the server's side stays open, its sessions alive. */
  cutClientSide(): void {
    for (const pair of this.pairs.splice(0)) {
      this.cut.push(pair);
      pair.near.removeAllListeners('close');
      pair.far.removeAllListeners('data');
      pair.near.destroy();
    }
  }

  async close(): Promise<void> {
    for (const { near, far } of [...this.pairs, ...this.cut]) {
      near.destroy();
      far.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
