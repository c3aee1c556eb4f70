import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/*
 * Vitest's global setup: builds dist/ from the current source (npm run build) once, before any test
 * file runs. The dashboard and the browser example load rill/client from dist/client/ (GET
 * /ui/vendor/rill-client/), and the library tests import the package's built face: a dist/ left
 * from an older checkout, or none at all, would test other code than the source's. The build is
 * incremental (dist/.tsbuildinfo): a few seconds when little changed. A build that fails stops the
 * run, with the compiler's errors.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export default async function buildDist(): Promise<void> {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(`npm run build (tsc -p tsconfig.build.json) failed; the tests would run against a stale dist/:\n${stdout}${stderr}`);
  }
}
