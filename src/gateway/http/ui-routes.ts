import { readFile } from 'node:fs/promises';
import { RillError } from '../../errors/index.js';
import { RawAnswer, type RouteRegistrar } from './router.js';

/*
 * The dashboard at /ui: static files only (the repository's ui/ folder and the STOMP client it
 * loads). They are public because they hold no data: every figure the page shows comes from the
 * API, whose routes check the caller's rights as for any other client.
 */

/** The ui/ folder, beside src/ and dist/ alike (this file is three levels down in both). */
const UI_FOLDER = new URL('../../../ui/', import.meta.url);

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

async function fileAnswer(file: URL, contentType: string, shownAs: string): Promise<RawAnswer> {
  try {
    return new RawAnswer(contentType, await readFile(file));
  } catch {
    throw new RillError('not-found', `${shownAs} is not available in this installation`);
  }
}

/** Registers /ui (the page), /ui/<asset> and the STOMP client bundle the page loads. */
export function uiRoutes(route: RouteRegistrar): void {
  const page = () => fileAnswer(new URL('index.html', UI_FOLDER), CONTENT_TYPES.html!, '/ui');
  // /ui/ as well (the router ignores a trailing slash): the page's links are absolute, so both work.
  route('GET', '/ui', 'public', page);
  route('GET', '/ui/vendor/stomp.umd.min.js', 'public', () =>
    fileAnswer(new URL('../bundles/stomp.umd.min.js', import.meta.resolve('@stomp/stompjs')), CONTENT_TYPES.js!, '/ui/vendor/stomp.umd.min.js'),
  );
  route('GET', '/ui/*', 'public', (_context, params) => {
    const asset = params['*'] ?? '';
    if (asset === '') return page();
    const extension = ASSET_PATH.exec(asset)?.[1];
    if (extension === undefined) throw new RillError('not-found', `nothing at /ui/${asset.slice(0, 200)}`);
    return fileAnswer(new URL(asset, UI_FOLDER), CONTENT_TYPES[extension]!, `/ui/${asset}`);
  });
}
