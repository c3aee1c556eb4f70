import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Broker } from '../broker/index.js';
import type { GroupCoordinator } from '../coordinator/index.js';
import type { Gateway } from '../gateway/index.js';

/** What the metrics read: each part's own counters, kept as plain fields where they happen. */
export interface MetricSources {
  broker: Pick<Broker, 'storedTraffic' | 'delivered' | 'workerRestarts' | 'topics' | 'offsets' | 'batchObserver' | 'syncObserver'>;
  coordinator: Pick<GroupCoordinator, 'counters' | 'listGroups' | 'lag'>;
  gateway: Pick<Gateway, 'connections' | 'pauses'>;
}

/** A scrape's partition offsets serve both offset gauges (and a second scrape close behind). */
const OFFSETS_REUSE_MS = 500;
/** Partition offsets not read by then are left out of the scrape. */
const OFFSETS_DEADLINE_MS = 5_000;

interface PartitionRow {
  topic: string;
  partition: number;
  logStartOffset: number;
  logEndOffset: number;
  sizeBytes: number;
}

/** Every public partition's offsets, read in parallel; those not answered within the deadline (a worker down) are left out. */
async function readOffsets(broker: Pick<Broker, 'topics' | 'offsets'>): Promise<PartitionRow[]> {
  const reads = broker.topics.listPublic().flatMap((topic) =>
    Array.from({ length: topic.partitions }, (_, partition) =>
      broker.offsets(topic, partition).then(
        ({ logStartOffset, logEndOffset, sizeBytes = 0 }) => ({ topic: topic.name, partition, logStartOffset, logEndOffset, sizeBytes }),
        () => null,
      ),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), OFFSETS_DEADLINE_MS)));
  const answered: Array<PartitionRow | null> = new Array(reads.length).fill(null);
  await Promise.race([Promise.all(reads.map((read, i) => read.then((row) => (answered[i] = row)))), deadline]);
  clearTimeout(timer);
  return answered.filter((row): row is PartitionRow => row !== null);
}

/** Seconds from a turn's batches being handed to their worker to its answer: the write and the fsync. */
const BATCH_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Rill's Prometheus metrics (prom-client). Nothing is recorded per message here: the data path
 * counts in plain fields (a partition's stored records, a topic's delivered ones), and each metric
 * reads them when scraped; the one histogram is observed once per batch. Labels are topics,
 * partitions (bounded by limits.maxTopics and maxPartitions) and consumer groups, never messages
 * or connections.
 */
export class BrokerMetrics {
  readonly registry = new Registry();

  constructor(sources: MetricSources) {
    const { broker, coordinator, gateway } = sources;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });

    const perTopic = (name: string, help: string, values: () => Map<string, number>) =>
      new Counter({
        name,
        help,
        labelNames: ['topic'],
        registers,
        collect() {
          this.reset();
          for (const [topic, value] of values()) this.inc({ topic }, value);
        },
      });
    const stored = (field: 'messages' | 'bytes') => () => {
      const totals = new Map<string, number>();
      for (const partition of broker.storedTraffic()) totals.set(partition.topic, (totals.get(partition.topic) ?? 0) + partition[field]);
      return totals;
    };
    const delivered = (field: 'messages' | 'bytes') => () => new Map([...broker.delivered.entries()].map(([topic, counter]) => [topic, counter[field]]));
    perTopic('rill_messages_in_total', 'Messages stored (acknowledged to their producers), per topic.', stored('messages'));
    perTopic('rill_bytes_in_total', 'Bytes of record batches stored, per topic.', stored('bytes'));
    perTopic('rill_messages_out_total', 'Messages handed to consumers (push, tails, pulls), per topic.', delivered('messages'));
    perTopic('rill_bytes_out_total', 'Bytes of message bodies handed to consumers (and of batches fetched raw), per topic.', delivered('bytes'));

    const batches = new Histogram({
      name: 'rill_publish_batch_duration_seconds',
      help: "Time from a turn's batches being handed to their broker worker to its answer (the write and, under fsync durability, the fsync): the storage part of publish latency.",
      buckets: BATCH_BUCKETS,
      registers,
    });
    broker.batchObserver = (latencyMs) => batches.observe(latencyMs / 1000);
    const syncs = new Histogram({
      name: 'rill_journal_fsync_duration_seconds',
      help: "Duration of a broker worker's journal fdatasync (one per group commit, covering every partition it wrote).",
      buckets: BATCH_BUCKETS,
      registers,
    });
    broker.syncObserver = (latencyMs) => syncs.observe(latencyMs / 1000);

    // Both offset gauges of one scrape share one read of every partition, made in parallel (the
    // workers answer their partitions concurrently) and bounded in time: a worker that does not
    // answer leaves its partitions out of the scrape, never the scrape without an answer.
    let offsetsRead: { at: number; rows: Promise<PartitionRow[]> } | null = null;
    const partitionOffsets = (): Promise<PartitionRow[]> => {
      const now = performance.now();
      if (offsetsRead === null || now - offsetsRead.at > OFFSETS_REUSE_MS) offsetsRead = { at: now, rows: readOffsets(broker) };
      return offsetsRead.rows;
    };
    const offsets = async (gauge: Gauge<'topic' | 'partition'>, field: 'logStartOffset' | 'logEndOffset' | 'sizeBytes') => {
      const rows = await partitionOffsets();
      // Set only after every await: a scrape running meanwhile does not find the gauge half empty.
      gauge.reset();
      for (const row of rows) gauge.set({ topic: row.topic, partition: String(row.partition) }, row[field]);
    };
    new Gauge({
      name: 'rill_partition_log_end_offset',
      help: 'The offset the next message of the partition will get.',
      labelNames: ['topic', 'partition'],
      registers,
      async collect() {
        await offsets(this, 'logEndOffset');
      },
    });
    new Gauge({
      name: 'rill_partition_log_start_offset',
      help: "The partition's first offset still kept (retention deletes below it).",
      labelNames: ['topic', 'partition'],
      registers,
      async collect() {
        await offsets(this, 'logStartOffset');
      },
    });
    new Gauge({
      name: 'rill_partition_size_bytes',
      help: "Bytes of the partition's segment files.",
      labelNames: ['topic', 'partition'],
      registers,
      async collect() {
        await offsets(this, 'sizeBytes');
      },
    });
    new Gauge({
      name: 'rill_consumer_group_lag',
      help: "Messages between a group's committed offset and the end of the partition.",
      labelNames: ['group', 'topic', 'partition'],
      registers,
      async collect() {
        const rows = await Promise.all(
          coordinator.listGroups().map(async (group) => {
            try {
              return (await coordinator.lag(group.name)).map((row) => ({ group: group.name, ...row }));
            } catch {
              return []; // a group gone, or a worker down: left out of this scrape
            }
          }),
        );
        this.reset();
        for (const row of rows.flat()) this.set({ group: row.group, topic: row.topic, partition: String(row.partition) }, row.lag);
      },
    });
    new Gauge({
      name: 'rill_consumer_group_members',
      help: 'Members of each consumer group.',
      labelNames: ['group'],
      registers,
      collect() {
        this.reset();
        for (const group of coordinator.listGroups()) this.set({ group: group.name }, group.memberCount);
      },
    });
    const total = (name: string, help: string, value: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(value());
        },
      });
    total('rill_rebalances_total', 'Rebalances of every consumer group.', () => coordinator.counters().rebalances);
    total('rill_dead_lettered_total', 'Messages sent to dead-letter topics.', () => coordinator.counters().deadLettered);
    total('rill_worker_restarts_total', 'Broker workers that died and were restarted.', () => broker.workerRestarts);
    total('rill_backpressure_pauses_total', 'Times reading from clients paused because storage was behind.', () => gateway.pauses);
    new Gauge({
      name: 'rill_connections',
      help: 'Open STOMP connections, by transport.',
      labelNames: ['transport'],
      registers,
      collect() {
        this.reset();
        const counts = { websocket: 0, tcp: 0 };
        for (const connection of gateway.connections()) counts[connection.transport]++;
        for (const [transport, count] of Object.entries(counts)) this.set({ transport }, count);
      },
    });
  }

  /** The metrics in Prometheus' text format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
