export { PartitionLog, PartitionOfflineError, type LogConfig, type RecoveryReport } from './partition-log.js';
export { BatchCompaction, LogCleaner, MIN_DIRTY_RATIO, type CleanerSettings, type CleanReport } from './log-cleaner.js';
export { CleaningPace, CleaningStopped } from './cleaning-pace.js';
export { CorruptBatchError, OffsetOutOfRangeError } from './errors.js';
export {
  RecordBatchBuilder,
  forEachMessageId,
  forEachRecord,
  readBatchInfo,
  readBatchProducer,
  readControlMarker,
  buildControlBatch,
  isBatchValid,
  isControlBatch,
  offsetAfter,
  claimedBatchSize,
  CorruptRecordsError,
  compressBatch,
  setBaseOffset,
  stampBatch,
  setBatchProducer,
  setTransactional,
  BATCH_HEADER_BYTES,
  type BatchInfo,
  type CompressionCodec,
  type ControlMarker,
  type RecordHeaders,
  type StoredRecord,
} from './record-batch/index.js';
export { TopicCatalog, type TopicDefinition } from './topic-catalog.js';
export { DataDirectoryLock, DataDirectoryLockedError, DataDirectoryAccessError, type LockHolder } from './data-directory-lock.js';
export {
  Journal,
  JournalRecordWriter,
  encodeKey,
  recoverJournal,
  replayJournal,
  replayJournals,
  type JournaledLog,
  type JournalOptions,
  type JournalRecovery,
  type LogResolver,
  type ReplayReport,
  type TakenOverFile,
} from './journal/index.js';
export { configureOpenFiles, MIN_OPEN_FILES } from './open-files.js';
export { assertCurrentDataFormat, LegacyDataFormatError, migrateDataDirectory, type MigrationReport } from './migration/index.js';
export { failpointsActive, transactionFailpoint } from './failpoints.js';
