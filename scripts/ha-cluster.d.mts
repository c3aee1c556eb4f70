// Types of scripts/ha-cluster.mjs, for the test that drives it (test/ha/).
import type { ChildProcess } from 'node:child_process';

export interface HaMachine {
  index: number;
  etcdClientPort: number;
  etcdPeerPort: number;
  patroniPort: number;
  postgresPort: number;
  httpPort: number;
  stompPort: number;
  processes: { etcd: ChildProcess; patroni: ChildProcess; rill: ChildProcess };
}

export interface HaSet {
  dir: string;
  url: string;
  machines: HaMachine[];
  kill(machine: HaMachine, part: 'etcd' | 'patroni' | 'postgres' | 'rill'): void;
  stop(): Promise<void>;
}

export function missingPackages(): string | null;
export function roles(set: { machines: HaMachine[] }): Promise<Array<'leader' | 'sync_standby' | 'replica' | string | null>>;
export function up(dir: string, options?: { log?: (line: string) => void }): Promise<HaSet>;
