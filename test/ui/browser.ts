import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import chromium from '@sparticuz/chromium';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll } from 'vitest';

/*
 * A headless Chromium (from @sparticuz/chromium, driven by puppeteer-core) for a test file: one
 * browser and one tab, shared by the file's tests. The browser tests' common set-up.
 */

export interface BrowserTab {
  /** Set once the file's beforeAll has run. */
  browser: Browser;
  page: Page;
  /** Uncaught exceptions in the page since they were last taken (splice them). */
  pageErrors: string[];
  /** Every URL the page requested since they were last taken (splice them). */
  requests: string[];
}

/** How long to wait for another test file unpacking Chromium before taking its lock over. */
const UNPACK_LOCK_STALE_MS = 120_000;

/**
 * Chromium's executable. @sparticuz/chromium unpacks it into the temporary directory on first use,
 * and two test files doing so at once (vitest runs files in parallel) would write the same file
 * together: one at a time, under a lock directory.
 */
async function chromiumExecutable(): Promise<string> {
  const lock = path.join(os.tmpdir(), 'rill-test-chromium-unpack.lock');
  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > UNPACK_LOCK_STALE_MS) fs.rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await chromium.executablePath();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** Starts the browser before the file's tests and closes it after them. */
export function useBrowser(viewport: { width: number; height: number }): BrowserTab {
  const tab = { pageErrors: [], requests: [] } as unknown as BrowserTab;
  beforeAll(async () => {
    try {
      tab.browser = await puppeteer.launch({ executablePath: await chromiumExecutable(), args: chromium.args, headless: true });
    } catch (error) {
      throw new Error(`Chromium could not start (@sparticuz/chromium with puppeteer-core), so the page cannot be tested: ${(error as Error).message}`);
    }
    tab.page = await tab.browser.newPage();
    await tab.page.setViewport(viewport);
    tab.page.on('pageerror', (error) => tab.pageErrors.push(error instanceof Error ? error.message : String(error)));
    tab.page.on('request', (request) => tab.requests.push(request.url()));
  }, 90_000);
  afterAll(async () => {
    await tab.browser?.close();
  });
  return tab;
}

/** The paths (and queries) of the requested URLs. */
export const requestedPaths = (urls: readonly string[]): string[] => urls.map((url) => new URL(url).pathname);
