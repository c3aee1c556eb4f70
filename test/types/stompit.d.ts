declare module 'stompit' {
  import type { Writable, Readable } from 'node:stream';

  interface ConnectOptions {
    host: string;
    port: number;
    connectHeaders?: Record<string, string>;
  }
  interface IncomingMessage extends Readable {
    headers: Record<string, string>;
    readString(encoding: string, callback: (error: Error | null, body?: string) => void): void;
  }
  interface StompitClient {
    send(headers: Record<string, string>, options?: { onReceipt?: () => void; onError?: (error: Error) => void }): Writable;
    subscribe(headers: Record<string, string>, callback: (error: Error | null, message: IncomingMessage) => void): { unsubscribe(): void };
    ack(message: IncomingMessage): void;
    disconnect(callback?: (error?: Error) => void): void;
    on(event: 'error', listener: (error: Error) => void): void;
  }
  export function connect(options: ConnectOptions, callback: (error: Error | null, client: StompitClient) => void): void;
  export type Client = StompitClient;
}
