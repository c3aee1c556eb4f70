// Runs a TypeScript worker entry when Rill runs from source (tests, `tsx`): registers tsx in the
// worker thread, then imports the real entry. The built package starts dist/broker/worker.js
// directly and never loads this file.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
