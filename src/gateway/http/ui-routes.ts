import { readFile } from 'node:fs/promises';
import { RillError } from '../../errors/index.js';
import { RawAnswer, type RouteRegistrar } from './router.js';

/*
 * The dashboard at /ui: static files only (the repository's ui/ folder, and the browser modules of
 * rill/client and @stomp/stompjs that the dashboard and the example at /examples load). They are
 * public because they hold no data: every figure the page shows comes from the API, whose routes
 * check the caller's rights as for any other client.
 */

/** The ui/ folder, beside src/ and dist/ alike (this file is three levels down in both). */
const UI_FOLDER = new URL('../../../ui/', import.meta.url);
/**
 * rill/client as built by `npm run build` (dist/client/: ES modules whose only bare import is
 * @stomp/stompjs, which the pages' import map resolves). From dist/gateway/http/ as from
 * src/gateway/http/ it is the same folder: the package's dist/client/.
 */
const CLIENT_FOLDER = new URL('../../../dist/client/', import.meta.url);
/** @stomp/stompjs' ES module build (esm6/: its package's "import" entry is esm6/index.js). */
const STOMPJS_FOLDER = new URL('./', import.meta.resolve('@stomp/stompjs'));

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  css: 'text/css; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
};

/**
 * What an asset's path may look like: lower-case names, at most one folder, one of the known
 * extensions. Neither dots nor slashes can climb out of ui/, so no path is ever resolved outside it.
 */
const ASSET_PATH = /^(?:[a-z0-9-]+\/)?[a-z0-9-]+\.(html|css|js|svg)$/;
/** A module of rill/client: dist/client/<name>.js, no folder (nor its .d.ts and .map files). */
const CLIENT_MODULE = /^[a-z0-9-]+\.js$/;
/** A module of @stomp/stompjs: esm6/<name>.js or esm6/compatibility/<name>.js (index.js imports both). */
const STOMPJS_MODULE = /^(?:compatibility\/)?[a-z0-9-]+\.js$/;

async function fileAnswer(file: URL, contentType: string, shownAs: string): Promise<RawAnswer> {
  try {
    return new RawAnswer(contentType, await readFile(file));
  } catch {
    throw new RillError('not-found', `${shownAs} is not available in this installation`);
  }
}

/** GET <prefix>/* answers with the file of `folder` that the rest of the path names, if it matches `allowed`. */
function folderRoute(route: RouteRegistrar, prefix: string, folder: URL, allowed: RegExp): void {
  route('GET', `${prefix}/*`, 'public', (_context, params) => {
    const name = params['*'] ?? '';
    if (!allowed.test(name)) throw new RillError('not-found', `nothing at ${prefix}/${name.slice(0, 200)}`);
    return fileAnswer(new URL(name, folder), CONTENT_TYPES.js!, `${prefix}/${name}`);
  });
}

/** Registers /ui (the page), /ui/<asset>, and the browser modules of rill/client and @stomp/stompjs (/ui/vendor/...). */
export function uiRoutes(route: RouteRegistrar): void {
  const page = () => fileAnswer(new URL('index.html', UI_FOLDER), CONTENT_TYPES.html!, '/ui');
  // /ui/ as well (the router ignores a trailing slash): the page's links are absolute, so both work.
  route('GET', '/ui', 'public', page);
  folderRoute(route, '/ui/vendor/rill-client', CLIENT_FOLDER, CLIENT_MODULE);
  folderRoute(route, '/ui/vendor/stompjs', STOMPJS_FOLDER, STOMPJS_MODULE);
  route('GET', '/ui/*', 'public', (_context, params) => {
    const asset = params['*'] ?? '';
    if (asset === '') return page();
    const extension = ASSET_PATH.exec(asset)?.[1];
    if (extension === undefined) throw new RillError('not-found', `nothing at /ui/${asset.slice(0, 200)}`);
    return fileAnswer(new URL(asset, UI_FOLDER), CONTENT_TYPES[extension]!, `/ui/${asset}`);
  });
}
