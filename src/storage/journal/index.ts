export { Journal, type JournaledLog, type JournalOptions, type LogResolver, type TakenOverFile } from './journal.js';
export { JournalRecordWriter, encodeKey } from './journal-record.js';
export { recoverJournal, replayJournal, replayJournals, type JournalRecovery, type ReplayReport } from './replay.js';
