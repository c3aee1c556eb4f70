import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  silent: boolean;
}

/**
 * A TCP proxy in front of a server that can stop passing the server's answers on, as a host that
 * died or was cut off by the network does: no RST, no FIN, nothing, so the client's sockets stay
 * open and wait. What clients send still reaches the server (a statement may run and commit, its
 * answer lost).
 */
export class SilentProxy {
  private readonly pairs = new Set<Pair>();
  private silent = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<SilentProxy> {
    let proxy: SilentProxy | null = null;
    const server = net.createServer((client) => {
      const upstream = net.connect(targetPort, targetHost);
      const pair: Pair = { client, upstream, silent: proxy!.silent };
      proxy!.pairs.add(pair);
      client.on('data', (data) => upstream.write(data));
      upstream.on('data', (data) => {
        if (!pair.silent) client.write(data);
      });
      const end = () => {
        proxy!.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', end);
      upstream.on('close', end);
      client.on('error', () => {});
      upstream.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new SilentProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  /** From now on, nothing the server sends reaches a client, on the connections open and on new ones (accepted, then never answered). */
  silence(): void {
    this.silent = true;
    for (const pair of this.pairs) pair.silent = true;
  }

  /** New connections are answered again; the silenced ones are cut, as a dead host's are once it is back (or a new one took its address). */
  restore(): void {
    this.silent = false;
    for (const pair of [...this.pairs]) if (pair.silent) pair.client.destroy();
  }

  async close(): Promise<void> {
    for (const pair of [...this.pairs]) pair.client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
