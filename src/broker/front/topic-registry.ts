import murmurhash3 from 'murmurhash3js';
import { topicName } from '../../config/index.js';
import { RillError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { TopicSettings } from '../../config/index.js';
import type { TopicDefinition } from '../../storage/index.js';
import { ANY_INCARNATION, type TopicChange, type TopicStore } from '../log-store.js';
import type { PartitionAssignment } from '../protocol.js';
import type { CreationQuota } from './creation-quota.js';
import { effectiveSettings, OFFSETS_TOPIC, TOPIC_SETTING_KEYS, type EffectiveTopicSettings } from './topic-settings.js';

/** Deleted topics' incarnations remembered, so that a late notice from the cluster never brings one back. */
const MAX_REMEMBERED_DELETIONS = 10_000;

/** Segment size of the committed offsets' log. */
const OFFSETS_SEGMENT_BYTES = 1024 * 1024;

export interface Topic {
  readonly name: string;
  /** Every partition of the topic, of every priority lane. */
  readonly partitions: number;
  /** Global partition ids, by partition number. */
  readonly partitionIds: readonly number[];
  /**
   * Priority lanes (1: none). Lane `l` is partitions `l × slots` to `(l + 1) × slots − 1`, where
   * `slots = partitions / lanes`; a key has the same slot in every lane.
   */
  readonly lanes: number;
  /** What the topic runs with (its own settings over the broker's defaults); replaced whole when they change. */
  readonly settings: Readonly<EffectiveTopicSettings>;
  /** The settings set on the topic itself, through the admin API. */
  readonly ownSettings: Readonly<TopicSettings>;
  /** Set once the topic is deleted (whoever still holds it then holds a topic that is gone). */
  readonly deleted: boolean;
}

interface RegisteredTopic extends Topic {
  partitions: number;
  partitionIds: number[];
  settings: EffectiveTopicSettings;
  ownSettings: TopicSettings;
  deleted: boolean;
  readonly createdAt: number;
}

/** A change to a topic's own settings: a value sets it, null puts back the default. */
export type TopicSettingsChange = { [K in keyof TopicSettings]?: TopicSettings[K] | null };

/** What hears of a topic's life: settings changed (storage, deduplication) or the topic deleted (subscriptions, groups). */
export interface TopicListener {
  settingsChanged?(topic: Topic, before: Readonly<EffectiveTopicSettings>): void;
  deleted?(topic: Topic): void;
}

/** The priority lane a partition belongs to (0: the lowest). */
export function laneOf(topic: Topic, partition: number): number {
  return topic.lanes === 1 ? 0 : Math.floor(partition / (topic.partitions / topic.lanes));
}

/** The lane a `priority` (0-9, JMS's scale) goes to: spread evenly, so 0-4 and 5-9 with two lanes. */
export function laneForPriority(priority: number, lanes: number): number {
  return Math.min(lanes - 1, Math.floor((priority * lanes) / 10));
}

/** Where partitions go: the broker's front gives each one its batching slot and its worker. */
export interface PartitionPlacement {
  readonly workerCount: number;
  /** Opens a topic's new partitions, numbered and grouped by worker. */
  place(topic: Topic, assignments: Map<number, PartitionAssignment[]>): void;
  /** Hands a topic's new compression and retention to its partitions' workers. */
  reconfigure(topic: Topic): void;
  /** Throws the retriable `unavailable` when a topic's partitions cannot be closed now (a worker of theirs is down). */
  checkRemovable(topic: Topic): void;
  /** Closes a deleted topic's partitions on their workers (what was sent to them first is stored and answered). */
  remove(topic: Topic): Promise<void>;
}

export interface TopicPolicy {
  autoCreate: boolean;
  defaultPartitions: number;
  /** `limits.maxTopics`: topics, internal ones included, beyond which creating one is refused. */
  maxTopics: number;
  /** `limits.maxPartitions`: partitions of all topics together beyond which creating or growing a topic is refused. */
  maxPartitions: number;
  /** Every topic's settings but those it sets itself. */
  defaults: EffectiveTopicSettings;
  /** The configuration file's topic definitions, with their settings. */
  definitions: ReadonlyArray<TopicSettings & { name: string }>;
}

/**
 * How a caller wants a topic it names: `existing` only; `auto` created on first use when
 * `topics.autoCreate` is on (a client publishing or subscribing); `always` created whatever the
 * policy (dead-letter topics, which must not lose a message because auto-create is off).
 */
export type TopicCreation = 'existing' | 'auto' | 'always';

/**
 * Every topic, once: names are checked here, auto-creation follows one policy here, the limits
 * (`limits.maxTopics`, `limits.maxPartitions`, a connection's creation quota) are enforced here,
 * and the catalog on disk is written here. Internal topics (`__` names) are reachable only through
 * `internal()`, never by a name a client sent; they count toward the limits but are never
 * refused, so that the broker can always start. Open files are no limit on topics: partitions
 * hold no descriptors of their own (each broker worker keeps a bounded cache of open segment
 * files, fitted to the open-file limit at start-up: descriptor-budget.ts).
 */
export class TopicRegistry {
  private readonly topics = new Map<string, RegisteredTopic>();
  private readonly growthListeners = new Set<(topic: string) => void>();
  private readonly listeners = new Set<TopicListener>();
  /** Global partition ids, in the order partitions were opened (a deleted topic's are not used again). */
  private nextPartitionId = 0;
  /** Partitions of every topic together (limits.maxPartitions). */
  private partitionCount = 0;
  /** Incarnations deleted since the start, oldest first (see rememberDeleted). */
  private readonly deletedIncarnations = new Set<string>();
  /** Topics being deleted: their names cannot be used again until their files are gone from `topics/`. */
  private readonly deleting = new Set<string>();

  constructor(
    private readonly catalog: TopicStore,
    private readonly policy: TopicPolicy,
    private readonly placement: PartitionPlacement,
    private readonly logger: Logger,
  ) {}

  /**
   * Registers the topics found on disk (at start-up). They are never refused, whatever the limits:
   * they exist. When they pass a limit, a warning says so.
   */
  load(definitions: TopicDefinition[]): void {
    for (const definition of definitions) this.register(definition);
    const { maxTopics, maxPartitions } = this.policy;
    if (this.topics.size > maxTopics || this.partitionCount > maxPartitions) {
      this.logger.warn(
        { topics: this.topics.size, maxTopics, partitions: this.partitionCount, maxPartitions },
        'the topics on disk pass limits.maxTopics or limits.maxPartitions: they are all served, but no topic can be created or grown until the limit is raised',
      );
    }
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  list(): Topic[] {
    return [...this.topics.values()];
  }

  /** Topics clients may see: every topic but the internal ones. */
  listPublic(): Topic[] {
    return this.list().filter((topic) => !isInternal(topic.name));
  }

  /**
   * The topic a client named. Throws `invalid-destination` for a name that is not a valid topic
   * name (internal names included), `unknown-topic` when it does not exist and may not be made,
   * `limit-reached` when making it would pass a limit, and `rate-limited` when `quota` (the
   * connection's, consulted only when `auto` really creates the topic) is used up.
   */
  resolve(name: string, creation: TopicCreation = 'auto', quota?: CreationQuota): Topic {
    const existing = isInternal(name) ? undefined : this.topics.get(name);
    if (existing !== undefined) return existing;
    const valid = topicName.safeParse(name);
    if (!valid.success)
      throw new RillError('invalid-destination', `invalid topic name "${name.slice(0, 300)}": ${valid.error.issues[0]?.message ?? 'invalid'}`);
    this.checkNotDeleting(name);
    if (creation === 'existing' || (creation === 'auto' && !this.policy.autoCreate)) {
      throw new RillError('unknown-topic', `topic "${name}" does not exist${creation === 'auto' ? ' and auto-create is off' : ''}`);
    }
    const partitions = this.policy.defaultPartitions;
    this.checkLimits(name, partitions);
    // Only a creation the limits allow uses up the connection's quota.
    if (creation === 'auto') quota?.take(name);
    return this.save(name, partitions);
  }

  /** An internal topic (`__` name), created with `partitions` when missing: counted, never refused by a limit. */
  internal(name: string, partitions: number): Topic {
    if (!isInternal(name)) throw new Error(`"${name}" is not an internal topic name`);
    return this.topics.get(name) ?? this.save(name, partitions);
  }

  /** Partitions a topic gets when its creator names none (topics.defaultPartitions). */
  get defaultPartitions(): number {
    return this.policy.defaultPartitions;
  }

  /**
   * Creates a topic (or returns it when it exists). The caller has checked the name. Throws
   * `limit-reached` when the topic would pass `limits.maxTopics` or `limits.maxPartitions` (topics
   * defined in the configuration included: the start-up then fails).
   */
  create(name: string, partitions: number, lanes = 1, settings: TopicSettings = {}): Topic {
    const existing = this.topics.get(name);
    if (existing !== undefined) return existing;
    this.checkNotDeleting(name);
    this.checkLimits(name, partitions * lanes);
    return this.save(name, partitions * lanes, lanes, settings);
  }

  private save(name: string, partitions: number, lanes = 1, settings: TopicSettings = {}): Topic {
    const definition: TopicDefinition = { name, partitions, createdAt: Date.now(), ...(lanes === 1 ? {} : { lanes }), settings: { ...settings } };
    this.catalog.save(definition);
    const topic = this.register(definition);
    this.logger.info({ topic: name, partitions, ...(lanes === 1 ? {} : { lanes }), ...settings }, 'topic created');
    // Groups whose members subscribe to the name (a topic deleted and made again) take its partitions.
    for (const listener of this.growthListeners) listener(name);
    return topic;
  }

  /** Throws the retriable `unavailable` while a topic of that name is being deleted. */
  private checkNotDeleting(name: string): void {
    if (this.deleting.has(name)) throw new RillError('unavailable', `topic "${name}" is being deleted; retry in a moment`);
  }

  /**
   * Changes a topic's own settings (a null puts back the default), stores them with the topic and
   * applies them: its partitions' workers take the new compression and retention, and listeners
   * hear of it. Internal topics keep theirs.
   */
  configure(name: string, change: TopicSettingsChange): Topic {
    const topic = isInternal(name) ? undefined : this.topics.get(name);
    if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
    const own: TopicSettings = { ...topic.ownSettings };
    for (const key of TOPIC_SETTING_KEYS) {
      if (!(key in change)) continue;
      const value = change[key];
      if (value === null || value === undefined) delete own[key];
      else (own as Record<string, unknown>)[key] = value;
    }
    const before = topic.settings;
    const settings = effectiveSettings(name, this.policy.defaults, this.definitionOf(name), own);
    this.catalog.save({ name, partitions: topic.partitions, createdAt: topic.createdAt, ...(topic.lanes === 1 ? {} : { lanes: topic.lanes }), settings: own });
    topic.ownSettings = own;
    topic.settings = settings;
    this.logger.info({ topic: name, settings: own }, 'topic settings changed');
    this.placement.reconfigure(topic);
    for (const listener of this.listeners) listener.settingsChanged?.(topic, before);
    return topic;
  }

  /**
   * Deletes a topic and its data. Its name is refused (retriably) until its partitions are closed
   * and its directory is gone from `topics/`; listeners hear of it first, so that its
   * subscriptions end and its groups let go of it. Internal topics cannot be deleted.
   */
  async delete(name: string): Promise<void> {
    const topic = isInternal(name) ? undefined : this.topics.get(name);
    if (topic === undefined) {
      if (isInternal(name)) throw new RillError('invalid-request', `topic "${name}" is internal to Rill and cannot be deleted`);
      throw new RillError('unknown-topic', `no topic "${name}"`);
    }
    this.placement.checkRemovable(topic);
    this.deleting.add(name);
    try {
      this.topics.delete(name);
      topic.deleted = true;
      this.rememberDeleted(topic);
      this.partitionCount -= topic.partitions;
      for (const listener of this.listeners) listener.deleted?.(topic);
      try {
        await this.placement.remove(topic);
      } catch (error) {
        // A worker that died meanwhile: its files go all the same (what the operator asked), and
        // its journal skips the records of partitions whose directory is gone when it restarts.
        this.logger.error({ err: error, topic: name }, "closing a deleted topic's partitions failed: its files are removed all the same");
      }
      const removed = this.catalog.remove(name);
      removed.catch((error: unknown) => this.logger.warn({ err: error, topic: name }, "removing a deleted topic's files failed: the next start removes them"));
      this.logger.info({ topic: name, partitions: topic.partitions }, 'topic deleted');
    } finally {
      this.deleting.delete(name);
    }
  }

  /**
   * A topic as another node of a cluster left it (made, grown, reconfigured or deleted there):
   * taken as it is and never written back; this node's subscriptions and groups hear of it as of
   * a change made here.
   */
  adopt(change: TopicChange): void {
    const { name } = change;
    const topic = this.topics.get(name);
    if ('deleted' in change) {
      // Another incarnation (made again since, here or elsewhere) stays.
      if (topic === undefined || isInternal(name) || (change.createdAt !== ANY_INCARNATION && topic.createdAt !== change.createdAt)) return;
      this.topics.delete(name);
      topic.deleted = true;
      this.rememberDeleted(topic);
      this.partitionCount -= topic.partitions;
      for (const listener of this.listeners) listener.deleted?.(topic);
      this.placement.remove(topic).catch((error: unknown) => this.logger.warn({ err: error, topic: name }, 'closing a topic deleted elsewhere failed'));
      this.logger.info({ topic: name }, 'topic deleted by another node');
      return;
    }
    const { definition } = change;
    if (topic === undefined) {
      // A notice of an incarnation deleted here already (its deletion is on its way to the database).
      if (this.deletedIncarnations.has(`${name}\u0000${definition.createdAt}`)) return;
      this.register(definition);
      this.logger.info({ topic: name, partitions: definition.partitions }, 'topic created by another node');
      for (const listener of this.growthListeners) listener(name);
      return;
    }
    if (definition.partitions > topic.partitions) {
      this.openPartitions(topic, definition.partitions);
      for (const listener of this.growthListeners) listener(name);
    }
    const own = definition.settings ?? {};
    if (JSON.stringify(own) !== JSON.stringify(topic.ownSettings)) {
      const before = topic.settings;
      topic.ownSettings = own;
      topic.settings = effectiveSettings(name, this.policy.defaults, this.definitionOf(name), own);
      this.placement.reconfigure(topic);
      for (const listener of this.listeners) listener.settingsChanged?.(topic, before);
    }
  }

  /** Incarnations deleted (name and creation time): a late notice of one never brings it back. */
  private rememberDeleted(topic: RegisteredTopic): void {
    if (this.deletedIncarnations.size >= MAX_REMEMBERED_DELETIONS) this.deletedIncarnations.delete(this.deletedIncarnations.values().next().value!);
    this.deletedIncarnations.add(`${topic.name}\u0000${topic.createdAt}`);
  }

  /** Tells `listener` of topics' settings changes and deletions. */
  listen(listener: TopicListener): void {
    this.listeners.add(listener);
  }

  private definitionOf(name: string): TopicSettings | undefined {
    return this.policy.definitions.find((definition) => definition.name === name);
  }

  /** Throws `limit-reached` when a new topic `name` with `partitions` partitions would pass a limit. */
  private checkLimits(name: string, partitions: number): void {
    const { maxTopics } = this.policy;
    if (this.topics.size >= maxTopics) {
      throw new RillError(
        'limit-reached',
        `cannot create topic "${name}": there are ${this.topics.size} topics (internal ones included), the most limits.maxTopics (${maxTopics}) allows`,
      );
    }
    this.checkPartitionLimits(`create topic "${name}" with ${partitions} partitions`, partitions);
  }

  /** Throws `limit-reached` when `added` more partitions would pass `limits.maxPartitions`. */
  private checkPartitionLimits(what: string, added: number): void {
    const { maxPartitions } = this.policy;
    if (this.partitionCount + added > maxPartitions) {
      throw new RillError(
        'limit-reached',
        `cannot ${what}: the topics would have ${this.partitionCount + added} partitions together, more than limits.maxPartitions (${maxPartitions}) allows`,
      );
    }
  }

  /**
   * Grows a topic to `count` partitions (partitions are never removed). As in Kafka, keys then map
   * to partitions anew: per-key order holds within each partition count.
   */
  addPartitions(name: string, count: number): Topic {
    const topic = this.topics.get(name);
    if (topic === undefined) throw new RillError('unknown-topic', `no topic "${name}"`);
    if (count <= topic.partitions) throw new RillError('invalid-request', `topic "${name}" has ${topic.partitions} partitions; a topic can only grow`);
    if (topic.lanes > 1) throw new RillError('invalid-request', `topic "${name}" has priority lanes: its partitions are fixed when it is created`);
    const before = topic.partitions;
    if (!isInternal(name)) this.checkPartitionLimits(`grow topic "${name}" from ${before} to ${count} partitions`, count - before);
    this.openPartitions(topic, count);
    this.catalog.save({ name, partitions: count, createdAt: topic.createdAt, settings: topic.ownSettings });
    this.logger.info({ topic: name, from: before, to: count }, 'topic partitions added');
    for (const listener of this.growthListeners) listener(name);
    return topic;
  }

  /** Calls `listener` with a topic's name whenever it gains partitions (and when it is created). */
  onPartitionsAdded(listener: (topic: string) => void): void {
    this.growthListeners.add(listener);
  }

  private register(definition: TopicDefinition): RegisteredTopic {
    const ownSettings = definition.settings ?? {};
    const topic: RegisteredTopic = {
      name: definition.name,
      partitions: 0,
      partitionIds: [],
      createdAt: definition.createdAt,
      lanes: definition.lanes ?? 1,
      ownSettings,
      deleted: false,
      settings: effectiveSettings(definition.name, this.policy.defaults, this.definitionOf(definition.name), ownSettings),
    };
    this.openPartitions(topic, definition.partitions);
    this.topics.set(definition.name, topic);
    return topic;
  }

  /** Numbers partitions `topic.partitions .. count - 1` and places each on its worker: murmur3(topic) + partition. */
  private openPartitions(topic: RegisteredTopic, count: number): void {
    const topicHash = murmurhash3.x86.hash32(topic.name) >>> 0;
    const byWorker = new Map<number, PartitionAssignment[]>();
    // The deduplication window is read back from the log after a restart: no compaction inside it.
    const { compression, retentionMs, retentionBytes, cleanupPolicy, deduplicationWindowMs: minCompactionLagMs } = topic.settings;
    // The committed offsets' log rolls sooner than others: the cleaner compacts closed segments only, and a start reads the open one whole.
    const segmentBytes = topic.name === OFFSETS_TOPIC ? OFFSETS_SEGMENT_BYTES : undefined;
    for (let partition = topic.partitions; partition < count; partition++) {
      const id = this.nextPartitionId++;
      const worker = (topicHash + partition) % this.placement.workerCount;
      topic.partitionIds.push(id);
      const list = byWorker.get(worker) ?? [];
      list.push({
        id,
        topic: topic.name,
        partition,
        directory: this.catalog.partitionDirectory(topic.name, partition),
        compression,
        retentionMs,
        retentionBytes,
        cleanupPolicy,
        minCompactionLagMs,
        ...(segmentBytes === undefined ? {} : { segmentBytes }),
      });
      byWorker.set(worker, list);
    }
    this.partitionCount += count - topic.partitions;
    topic.partitions = count;
    this.placement.place(topic, byWorker);
  }
}

function isInternal(name: string): boolean {
  return name.startsWith('__');
}
