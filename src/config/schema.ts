import os from 'node:os';
import { z } from 'zod';

const MiB = 1024 * 1024;
const DAY_MS = 24 * 3600 * 1000;

const port = z.number().int().min(0).max(65535);
const milliseconds = z.number().int().min(0);
/** A limit where -1 means "none". */
const limitOrNone = z.number().int().min(-1);

export const TOPIC_NAME_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;

export const topicName = z
  .string()
  .regex(TOPIC_NAME_PATTERN, 'a topic name is 1 to 249 of the characters A-Z a-z 0-9 . _ -')
  .refine((name) => name !== '.' && name !== '..', 'a topic name cannot be "." or ".."')
  .refine((name) => !name.startsWith('__'), 'topic names starting with __ are reserved for Rill');

const server = z
  .object({
    /**
     * The interface both listeners bind. Unset: every interface (0.0.0.0) when clients must
     * authenticate (auth.users or auth.tokens) or auth.allowAnonymous says anyone may connect,
     * else the loopback only (127.0.0.1).
     */
    host: z.string().min(1).optional(),
    httpPort: port.default(8080),
    stompPort: port.default(61613),
    maxConnections: z.number().int().min(1).default(10_000),
    websocketPaths: z.array(z.string().startsWith('/')).min(1).default(['/stomp', '/producer']),
    /**
     * Origins (`https://app.example.com`, or `*`) whose browser pages may open WebSockets and call
     * the HTTP API (CORS), besides the broker's own host; clients that send no Origin (Node,
     * Python, Java) are not affected.
     */
    allowedOrigins: z.array(z.union([z.literal('*'), z.url()])).default([]),
    /** The plain (unencrypted) listeners; with TLS configured, either may be switched off. */
    plainHttp: z.boolean().default(true),
    plainStomp: z.boolean().default(true),
  })
  .strict();

/**
 * TLS listeners beside the plain ones (as RabbitMQ's 15673 and 61614): HTTPS and WSS on one port,
 * STOMP over TLS on another; certificate files are read at start-up and on SIGHUP.
 */
const tls = z
  .object({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** The CA that signs client certificates (and, with it, the chain sent to clients). */
    caFile: z.string().min(1).optional(),
    httpsPort: port.default(8443),
    stompPort: port.default(61614),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /**
     * none: no client certificates. request: ask for one; a client with a valid one (signed by
     * caFile) and no other credentials is the user its subject's common name names. require: refuse
     * clients without a valid one.
     */
    clientCertificates: z.enum(['none', 'request', 'require']).default('none'),
  })
  .strict()
  .refine((t) => t.clientCertificates === 'none' || t.caFile !== undefined, {
    message: 'client certificates need tls.caFile, the CA that signs them',
    path: ['caFile'],
  });

const stomp = z
  .object({
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * MiB)
      .default(MiB),
    maxHeaders: z.number().int().min(4).max(10_000).default(64),
    maxHeaderBytes: z
      .number()
      .int()
      .min(64)
      .max(MiB)
      .default(8 * 1024),
    heartbeat: z
      .object({
        /** The server can send heart-beats this often (0: never). */
        sendMs: milliseconds.default(10_000),
        /** The server wants the client's heart-beats this often (0: never). */
        receiveMs: milliseconds.default(10_000),
        /** A client silent for longer than its interval times this is disconnected. */
        grace: z.number().min(1).max(10).default(1.5),
        /** Heart-beat intervals a client asks for above this are clamped to it (a timer cannot run longer than 2^31-1 ms). */
        maxMs: z
          .number()
          .int()
          .min(1000)
          .max(2 ** 31 - 1)
          .default(3_600_000),
      })
      .strict()
      .prefault({}),
    connectTimeoutMs: z.number().int().min(100).default(10_000),
    /** Unacknowledged MESSAGE frames a subscription may have in flight (client ack modes). */
    prefetch: z.number().int().min(1).max(1_000_000).default(1000),
    maxTransactionFrames: z.number().int().min(1).default(10_000),
  })
  .strict();

const storage = z
  .object({
    /**
     * Where partitions are kept: `embedded` (segment files in dataDir, owned by the broker workers)
     * or `postgres` (a shared PostgreSQL database: cluster mode, nodes hold no state of their own).
     */
    backend: z.enum(['embedded', 'postgres']).default('embedded'),
    postgres: z
      .object({
        /** A libpq URL; several hosts (`postgres://a,b/rill?target_session_attrs=read-write`) for fail-over. */
        url: z.string().min(1).optional(),
        /** Connections of this node's pool at most (reads, the coordinator, background jobs); appends, LISTEN and the node id's lock have one each besides. */
        maxConnections: z.number().int().min(2).max(1000).default(10),
        /**
         * How long an append waits for the database's answer before its publishers are told that
         * it may have been stored (retriably), its connection is cut, and the appends behind it are
         * refused until the database answers again with none of the node's earlier statements
         * running: a producer hears back while there is no primary (within twice this at most,
         * when its append waited behind one answered just in time).
         */
        appendTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
        /**
         * How long a read of the log (a fetch, a partition's offsets) waits for the database before
         * it fails retriably: while there is no primary, a pull is answered with an error instead of
         * waiting until one is promoted. The read is not cancelled: it runs once the database
         * answers, and its answer is dropped. Also how long the probe after a lost connection may
         * go unanswered before the pool's connections are cut (and made anew).
         */
        readTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
        /**
         * Each node reads the messageIDs of what the other nodes append (topics with a deduplication
         * window), so that a producer resending through another node is answered with the first copy.
         * It costs every node a read of the cluster's whole publish traffic: off, resends are
         * recognised only by the node that stored the first copy (route producers to one node).
         */
        deduplicateAcrossNodes: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    /**
     * This node's name in a cluster (when left out: the host name and a hash of dataDir, the same at
     * each start). At most 58 characters: its connections are named `rill:<nodeId>`, and PostgreSQL
     * cuts application_name at 63 bytes, after which a node would not recognise its own sessions.
     */
    nodeId: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,58}$/, 'a node id is 1-58 letters, digits, dots, dashes or underscores')
      .optional(),
    dataDir: z.string().min(1).default('./data'),
    /**
     * Free space kept on the data directory's disk for what must still be written when the disk
     * fills: data partitions refuse appends (retriably) below it, the offsets topic and metadata may use it.
     */
    freeSpaceReserveBytes: z
      .number()
      .int()
      .min(0)
      .default(16 * MiB),
    segmentBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * MiB)
      .default(64 * MiB),
    segmentMs: z
      .number()
      .int()
      .min(1000)
      .default(7 * DAY_MS),
    indexIntervalBytes: z.number().int().min(64).default(4096),
    /**
     * Segment files each broker worker (and the main thread, replaying journals at start-up) keeps
     * open at most, through a cache that closes the least recently used; shrunk at start-up to what
     * the process's open-file limit holds.
     */
    openFilesPerWorker: z.number().int().min(8).max(1_000_000).default(1024),
    durability: z
      .object({
        /**
         * fsync: acknowledge after fsync, with group commit (the default).
         * interval: acknowledge after the write; fsync every intervalMs.
         * os: acknowledge after the write; the OS flushes when it likes.
         */
        mode: z.enum(['fsync', 'interval', 'os']).default('fsync'),
        intervalMs: z.number().int().min(1).default(1000),
      })
      .strict()
      .prefault({}),
    /**
     * Each broker worker's write-ahead journal (`<dataDir>/journal/<worker>/`): every append goes
     * through it, and one fdatasync of it makes durable what was written to any number of partitions.
     */
    journal: z
      .object({
        /** A journal file rolls at this size; full files are reused once the segments hold their records durably. */
        fileBytes: z
          .number()
          .int()
          .min(MiB)
          .max(1024 * MiB)
          .default(32 * MiB),
      })
      .strict()
      .prefault({}),
    /** The log cleaner, for topics whose cleanupPolicy is `compact`. */
    compaction: z
      .object({
        /** How often each broker worker looks for compacted partitions with new closed segments to clean. */
        intervalMs: z.number().int().min(100).default(15_000),
        /** A tombstone (a key's deletion) is kept this long after its segment's last append, so that consumers behind see it. */
        tombstoneRetentionMs: milliseconds.default(DAY_MS),
        /** Bytes the cleaner reads and writes per second, per broker worker, at most. */
        bytesPerSecond: z
          .number()
          .int()
          .min(1024)
          .default(16 * MiB),
        /** Keys one cleaning run maps at most (about 100 bytes of memory each): past it, the run cleans what it mapped, the next one the rest. */
        maxKeysPerRun: z.number().int().min(1000).default(500_000),
      })
      .strict()
      .prefault({}),
    retention: z
      .object({
        ms: limitOrNone.default(7 * DAY_MS),
        bytes: limitOrNone.default(-1),
        checkIntervalMs: z
          .number()
          .int()
          .min(100)
          .default(5 * 60_000),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((storage) => storage.backend !== 'postgres' || storage.postgres.url !== undefined, {
    message: 'storage.backend postgres needs storage.postgres.url (or --postgres-url)',
    path: ['postgres', 'url'],
  });

const compressionCodec = z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']);
const ttlMs = z
  .number()
  .int()
  .min(0)
  .max(365 * DAY_MS);
const deduplicationWindowMs = z
  .number()
  .int()
  .min(0)
  .max(7 * DAY_MS);

/**
 * A topic's own settings (a definition's in the config file, or set through the admin API and
 * stored in its topic.json): each one left out takes the broker's default.
 */
export const topicSettings = z
  .object({
    /** Closed segments whose last append is older than this are deleted; -1 keeps them (storage.retention.ms). */
    retentionMs: limitOrNone.optional(),
    /** Oldest segments of a partition are deleted while it is larger than this; -1: no limit (storage.retention.bytes). */
    retentionBytes: limitOrNone.optional(),
    /** `delete`: old segments go by retention; `compact`: the latest record of each key is kept, whatever its age. */
    cleanupPolicy: z.enum(['delete', 'compact']).optional(),
    /** A published message's body larger than this is refused (topics.maxMessageBytes). */
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * MiB)
      .optional(),
    compression: compressionCodec.optional(),
    deduplicationWindowMs: deduplicationWindowMs.optional(),
    ttlMs: ttlMs.optional(),
  })
  .strict();

export type TopicSettings = z.output<typeof topicSettings>;

/** A change of a topic's own settings (PATCH /v1/topics/<topic>/config): null puts one back to the broker's default. */
export const topicSettingsChange = z
  .object({
    retentionMs: limitOrNone.nullable().optional(),
    retentionBytes: limitOrNone.nullable().optional(),
    cleanupPolicy: z.enum(['delete', 'compact']).nullable().optional(),
    maxMessageBytes: topicSettings.shape.maxMessageBytes.unwrap().nullable().optional(),
    compression: compressionCodec.nullable().optional(),
    deduplicationWindowMs: deduplicationWindowMs.nullable().optional(),
    ttlMs: ttlMs.nullable().optional(),
  })
  .strict();

const topics = z
  .object({
    autoCreate: z.boolean().default(true),
    defaultPartitions: z.number().int().min(1).max(10_000).default(4),
    /** Records without a key: `sticky` (Kafka's default: a turn's records to one partition, the next turn to the next) or `round-robin`. */
    keylessPartitioner: z.enum(['sticky', 'round-robin']).default('sticky'),
    /**
     * How the broker compresses the record batches it stores (Kafka's codecs; `none` by default).
     * Batches are read whatever their codec.
     */
    compression: compressionCodec.default('none'),
    /**
     * Idempotent publishing: a message whose messageID was stored in the topic less than this long
     * ago is not stored again (its publisher hears where the first copy is). 0 turns it off.
     */
    deduplicationWindowMs: deduplicationWindowMs.default(5 * 60_000),
    /** Time-to-live of a message published without an `expires` or `ttl` header; 0: it never expires. */
    ttlMs: ttlMs.default(0),
    /** A published message's body larger than this is refused (a topic may set its own); default: stomp.maxFrameBytes. */
    maxMessageBytes: z
      .number()
      .int()
      .min(1)
      .max(64 * MiB)
      .optional(),
    definitions: z
      .array(
        z
          .object({
            name: topicName,
            partitions: z.number().int().min(1).max(10_000),
            ...topicSettings.shape,
            /**
             * Priority lanes (2 to 10; 1: none): the topic holds `partitions` partitions per lane, and a
             * message's `priority` header (0-9) picks its lane. Fixed when the topic is created.
             */
            priorityLanes: z.number().int().min(1).max(10).optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict()
  .refine(
    (topics) => new Set([topics.deduplicationWindowMs, ...topics.definitions.map((d) => d.deduplicationWindowMs)]).size <= 100,
    "at most 100 different deduplication windows (topics.deduplicationWindowMs and the definitions' own)",
  );

const brokers = z
  .object({
    /** Broker worker threads; default: one per CPU core. */
    workers: z.number().int().min(1).max(256).optional(),
    /** A worker that dies is restarted after this, doubled on each restart in a row, up to restartBackoffMaxMs. */
    restartBackoffMs: z.number().int().min(0).default(100),
    restartBackoffMaxMs: z.number().int().min(0).default(30_000),
  })
  .strict();

const coordinator = z
  .object({
    /** A member not heard from for this long loses its partitions (the seed's 30 s). */
    sessionTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000),
    assignor: z.enum(['range', 'roundrobin', 'sticky']).default('range'),
    /** Where a group starts in a partition it has no committed offset for. */
    resetPolicy: z.enum(['earliest', 'latest']).default('earliest'),
    /** Commit positions on pull this often; 0: only explicit commits (at-least-once). */
    autoCommitIntervalMs: z.number().int().min(0).default(0),
    /** Deliveries of one message to push subscribers before it is dead-lettered. */
    maxDeliveries: z.number().int().min(1).max(1000).default(5),
    deadLetterSuffix: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,40}$/)
      .default('.DLQ'),
    /** Send a message that expires (its time-to-live past) before the group consumed it to the dead-letter topic, with reason "expired". */
    deadLetterExpired: z.boolean().default(false),
    /** Remove a dynamic member as soon as its connection drops, instead of at session timeout. */
    removeOnDisconnect: z.boolean().default(false),
  })
  .strict();

const limits = z
  .object({
    /** Bytes of published data waiting for storage before the server stops reading from producers. */
    maxInflightBytes: z
      .number()
      .int()
      .min(MiB)
      .default(64 * MiB),
    /** Bytes written to one connection and not yet taken by the client before the server stops reading from it. */
    connectionHighWaterBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .default(MiB),
    /** Topics, internal ones included, beyond which creating one is refused. */
    maxTopics: z.number().int().min(1).default(10_000),
    /** Partitions of all topics together beyond which creating or growing a topic is refused. */
    maxPartitions: z.number().int().min(1).default(100_000),
    /** Topics one connection may auto-create per minute. */
    autoCreatePerMinute: z.number().int().min(1).default(600),
    /**
     * messageIDs the deduplication windows remember, all topics together (about 70 bytes each;
     * 250,000 covers the messages in flight at a crash many times over, in some 20 MB);
     * past it the oldest are forgotten before their window is over, and a warning says so.
     */
    maxDeduplicationIds: z.number().int().min(1000).max(16_000_000).default(250_000),
    /** The longest delay (`deliver-at`, `delay`) a SEND may ask for: a delayed message holds back its partition until its time. */
    maxDelayMs: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(7 * 24 * 3600_000),
  })
  .strict();

/** What an ACL rule may allow or deny; `all` is every one of them. */
export const ACL_OPERATIONS = ['produce', 'consume', 'join', 'create', 'delete', 'alter', 'reset', 'describe', 'all'] as const;

const aclRule = z
  .object({
    effect: z.enum(['allow', 'deny']).default('allow'),
    /** `user:<name>`, `role:<role>`, or `*` (everyone, the anonymous included). */
    principal: z.string().regex(/^(\*|user:.+|role:.+)$/, 'a principal is "user:<name>", "role:<role>" or "*"'),
    /** `topic:<pattern>`, `group:<pattern>` (a pattern may hold `*` wildcards: `orders.*`), or `cluster`. */
    resource: z.string().regex(/^(cluster|topic:.+|group:.+)$/, 'a resource is "topic:<pattern>", "group:<pattern>" or "cluster"'),
    operations: z.array(z.enum(ACL_OPERATIONS)).min(1),
  })
  .strict();

const quotaLimits = z.object({
  /** Connections open at once. */
  connections: limitOrNone.default(-1),
  /** Subscriptions open at once. */
  subscriptions: limitOrNone.default(-1),
  /** Bytes a second read from the principal's connections (frames and all); past it they are read more slowly, never dropped. */
  publishBytesPerSecond: limitOrNone.default(-1),
  /** Messages (SENDs) a second; past it, likewise. */
  publishMessagesPerSecond: limitOrNone.default(-1),
});

const auth = z
  .object({
    /**
     * Without users or tokens: let anyone connect on every interface (logged as a warning). With
     * them: a client that gives no credentials connects as the principal `user:anonymous`, which
     * the ACLs may grant rights to.
     */
    allowAnonymous: z.boolean().default(false),
    /** Users with passwords; `rill passwd` makes a password's hash. */
    users: z
      .array(
        z
          .object({
            name: z.string().regex(/^[^:\s]{1,128}$/, 'a user name is 1 to 128 characters, without spaces or ":"'),
            passwordHash: z.string().startsWith('scrypt$', 'a password hash is made by `rill passwd` (scrypt$...)'),
            roles: z.array(z.string().min(1)).default([]),
          })
          .strict(),
      )
      .default([]),
    /** JSON Web Tokens, given as the CONNECT passcode or as `Authorization: Bearer` on HTTP. */
    tokens: z
      .object({
        /** An HMAC secret (HS256/384/512), at least 32 characters. */
        secret: z.string().min(32).optional(),
        /** A JWKS file of public keys (RS*, PS*, ES*, EdDSA). */
        jwksFile: z.string().min(1).optional(),
        /** A JWKS URL of public keys, fetched and cached. */
        jwksUrl: z.url().optional(),
        issuer: z.string().min(1).optional(),
        audience: z.string().min(1).optional(),
        /** The claim that names the user. */
        userClaim: z.string().min(1).default('sub'),
        /** The claim that lists the user's roles (an array, or a space-separated string). */
        rolesClaim: z.string().min(1).default('roles'),
        clockToleranceSeconds: z.number().int().min(0).max(300).default(5),
      })
      .strict()
      .refine(
        (t) => [t.secret, t.jwksFile, t.jwksUrl].filter((k) => k !== undefined).length === 1,
        'auth.tokens needs exactly one of secret, jwksFile, jwksUrl',
      )
      .optional(),
    /** Access rules: deny wins over allow; with authentication on, what no rule allows is denied. */
    acls: z.array(aclRule).default([]),
    /** CONNECTs and HTTP requests with bad credentials one remote address may make per minute before it is refused at once. */
    failedLoginsPerMinute: z.number().int().min(1).default(10),
    /**
     * What one principal (all its connections together) may use; -1: no limit. `principals`
     * overrides them for users or roles (the first rule that names the principal wins).
     */
    quotas: quotaLimits
      .extend({
        principals: z
          .array(
            quotaLimits
              .partial()
              .extend({ principal: z.string().regex(/^(user:.+|role:.+)$/, 'a principal is "user:<name>" or "role:<role>"') })
              .strict(),
          )
          .default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((a) => new Set(a.users.map((u) => u.name)).size === a.users.length, 'a user is listed twice in auth.users');

export const configSchema = z
  .object({
    server: server.prefault({}),
    stomp: stomp.prefault({}),
    brokers: brokers.prefault({}),
    storage: storage.prefault({}),
    topics: topics.prefault({}),
    coordinator: coordinator.prefault({}),
    limits: limits.prefault({}),
    auth: auth.prefault({}),
    tls: tls.optional(),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .prefault({}),
  })
  .strict();

export type RillConfigInput = z.input<typeof configSchema>;
type ParsedConfig = z.output<typeof configSchema>;
/** The checked configuration, with what depends on other settings worked out (the workers, the host). */
export type RillConfig = Omit<ParsedConfig, 'brokers' | 'server'> & {
  brokers: Omit<ParsedConfig['brokers'], 'workers'> & { workers: number };
  server: Omit<ParsedConfig['server'], 'host'> & { host: string };
};
export type StompConfig = RillConfig['stomp'];
export type StorageConfig = RillConfig['storage'];
export type AuthConfig = RillConfig['auth'];
export type TlsConfig = NonNullable<RillConfig['tls']>;
export type AclRule = AuthConfig['acls'][number];
export type AclOperation = (typeof ACL_OPERATIONS)[number];

/**
 * One broker worker per core, less one for the gateway thread, which parses and answers every
 * frame: on two cores a second worker only competed with it (one producer waiting on each
 * receipt window ran 15-25 % slower), and its batches waited for two fsyncs instead of one.
 */
export function defaultWorkerCount(): number {
  return Math.max(1, (os.availableParallelism?.() ?? os.cpus().length) - 1);
}
