export { Journal, type JournaledLog, type JournalOptions } from './journal.js';
export { JournalRecordWriter, encodeKey } from './journal-record.js';
export { replayJournal, replayJournals, type ReplayReport } from './replay.js';
