import type { KnipConfig } from 'knip';

// Unused files, exports, types and dependencies (run by `npm run knip`).
// Also entries without being listed: bin/rill.js (package.json "bin") and vitest.config.ts (knip's vitest plugin).
const config: KnipConfig = {
  entry: [
    'src/cli/entry.ts',
    // The library's face (package.json "exports").
    'src/index.ts',
    // rill/client, the browser and Node client (package.json "exports" "./client").
    'src/client/index.ts',
    // The broker worker entry and its dev loader are started by file URL (new Worker(url)), never imported.
    'src/broker/worker/main.ts',
    'src/broker/worker/dev-worker-loader.mjs',
    'scripts/*.mjs',
    'examples/*.ts',
    'test/**/*.test.ts',
    // The dashboard's browser entry, loaded by ui/index.html (<script type="module">).
    'ui/app.js',
    // Processes the crash tests start and kill.
    'test/crash/fixtures/*.ts',
  ],
  project: ['src/**/*.{ts,mts,mjs}', 'test/**/*.ts', 'scripts/**/*.mjs', 'examples/**/*.ts', 'ui/**/*.js'],
  // A type or interface exported and used in its own file is a documented contract (broker/protocol.ts's
  // WorkerCalls, say), not dead code; unused values and types used nowhere are still reported.
  ignoreExportsUsedInFile: { interface: true, type: true },
  // The full-disk test mounts a tmpfs (as root); these are the system's, not packages.
  ignoreBinaries: ['mount', 'umount', 'useradd'],
};

export default config;
