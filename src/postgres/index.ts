export { PostgresLogStore } from './postgres-log-store.js';
export { NodeIdTakenError } from './node-id-lock.js';
export { NewerSchemaError } from './migrations.js';
export { BatchCleaner } from './batch-cleaner.js';
export { Lease } from './lease.js';
