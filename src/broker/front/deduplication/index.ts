export { Deduplicator, type DeduplicatedTicket, type LogReads } from './deduplicator.js';
