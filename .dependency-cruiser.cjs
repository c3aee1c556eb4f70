// Import rules for src/ (run by `npm run deps`: `depcruise src`). test/ is out of scope: tests may deep-import.
//
// The top-level folders of src/ are the modules of Rill. Each one's `index.ts` is its public face
// (for src/protocol the face is src/protocol/stomp/index.ts). The layers, top to bottom:
//
//   cli -> server -> gateway -> coordinator -> broker -> storage
//
// A layer may import the layers below it, never those above. protocol, config, logging and errors
// are leaves: anyone may import them, and they import none of the layers. security stands beside
// the path (principals, passwords, tokens, ACL rules): the front doors (gateway, server, cli) ask
// it, and it imports only the leaves.

/** `^src/(a|b|c)/`: a path in one of these top-level folders. */
const inFolders = (...folders) => `^src/(${folders.join('|')})/`;

const LEAVES = ['protocol', 'config', 'logging', 'errors'];

/** The broker worker entry is started by file URL (new Worker(url)), never imported. */
const WORKER_ENTRY = '^src/broker/worker/main\\.ts$';
/** Loads the worker entry through tsx when Rill runs from source; also started by file URL. */
const DEV_WORKER_LOADER = '^src/broker/worker/dev-worker-loader\\.mjs$';

/** One rule per layer: what it must not import. */
const layer = (name, folder, forbidden, why) => ({
  name: `layer-${name}`,
  comment: `${why} (layers: cli -> server -> gateway -> coordinator -> broker -> storage; protocol, config, logging and errors are leaves)`,
  severity: 'error',
  from: { path: inFolders(folder) },
  to: { path: inFolders(...forbidden) },
});

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles between files of src/, not even through type-only imports.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-folder-cycles',
      comment: 'No cycles between the top-level folders of src/ (e.g. config -> errors -> config).',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/[^/]+$' },
      to: { circular: true },
    },
    {
      name: 'through-index-only',
      comment:
        "A top-level folder of src/ is imported only through its index.ts (src/protocol through src/protocol/stomp/index.ts): import '../broker/index.js', not '../broker/broker.js'.",
      severity: 'error',
      from: { path: '^src/([^/]+)/' },
      to: {
        path: '^src/',
        pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$', '^src/protocol/stomp/index\\.ts$'],
      },
    },
    {
      name: 'layer-nothing-imports-cli',
      comment: 'cli is the top: nothing in src/ imports it.',
      severity: 'error',
      from: { path: '^src/', pathNot: inFolders('cli') },
      to: { path: inFolders('cli') },
    },
    {
      name: 'layer-only-cli-imports-server',
      comment: 'Only cli, the library face (src/index.ts) and tests start the server.',
      severity: 'error',
      from: { path: '^src/', pathNot: [inFolders('cli', 'server'), '^src/index\\.ts$'] },
      to: { path: inFolders('server') },
    },
    layer('gateway', 'gateway', ['server', 'cli'], 'gateway is below server'),
    layer('metrics', 'metrics', ['server', 'cli'], 'metrics reads the parts below the server; the server serves them'),
    {
      name: 'layer-only-server-imports-metrics',
      comment: 'The metrics read every part: only the server, which assembles the parts, builds them.',
      severity: 'error',
      from: { path: '^src/', pathNot: inFolders('server', 'metrics') },
      to: { path: inFolders('metrics') },
    },
    layer(
      'security',
      'security',
      ['storage', 'broker', 'coordinator', 'gateway', 'server', 'cli'],
      'security is beside the data path: it knows principals and rules, and the front doors ask it',
    ),
    layer('coordinator', 'coordinator', ['gateway', 'server', 'cli'], 'coordinator is below gateway'),
    layer('broker', 'broker', ['coordinator', 'gateway', 'server', 'cli'], 'broker is below coordinator'),
    layer('storage', 'storage', ['broker', 'coordinator', 'gateway', 'server', 'cli'], 'storage is the bottom layer'),
    layer(
      'leaves',
      `(${LEAVES.join('|')})`,
      ['storage', 'broker', 'coordinator', 'gateway', 'server', 'cli'],
      'protocol, config, logging and errors are leaves',
    ),
    {
      name: 'client-standalone',
      comment:
        'rill/client ships to browsers: it imports its own files and @stomp/stompjs, nothing else (no node: builtins, no other folder of src/, no other package).',
      severity: 'error',
      from: { path: '^src/client/' },
      to: { pathNot: ['^src/client/', '^node_modules/@stomp/stompjs/'] },
    },
    {
      name: 'nothing-imports-client',
      comment: 'rill/client is a face of its own (package.json "./client"): the broker never imports it.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/client/' },
      to: { path: '^src/client/' },
    },
    {
      name: 'no-orphans',
      comment: 'A file nothing imports and that imports nothing is likely dead. The worker entry and its dev loader are started by file URL.',
      severity: 'error',
      from: {
        orphan: true,
        pathNot: ['\\.d\\.(c|m)?ts$', WORKER_ENTRY, DEV_WORKER_LOADER],
      },
      to: {},
    },
    {
      name: 'not-to-test',
      comment: 'src/ never imports test code.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
    {
      name: 'not-to-dev-dep',
      comment: "src/ ships: it may not import devDependencies (the dev worker loader's tsx is the one exception: it never runs from dist/).",
      severity: 'error',
      from: { path: '^src/', pathNot: DEV_WORKER_LOADER },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-non-package-json',
      comment: 'An npm package that is not in package.json dependencies.',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that does not resolve to a file.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-deprecated-core',
      severity: 'error',
      from: {},
      to: { dependencyTypes: ['core'], path: '^(punycode|domain|constants|sys|_linklist|_stream_wrap)$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|coverage|data)/' },
    // Type-only imports count: they are dependencies between folders too.
    tsPreCompilationDeps: true,
    // NodeNext: './broker/index.js' resolves to './broker/index.ts'.
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
      extensions: ['.ts', '.mts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
    skipAnalysisNotInRules: true,
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
