import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashPassword } from '../../src/security/index.js';
import { canonical, connectStompJs, publishWithReceipt, until, WAIT, type StompJsClient } from '../helpers/clients.js';
import { call, httpBase } from '../helpers/http.js';
import { useServers, type TestServer } from '../helpers/server.js';
import { requestedPaths, useBrowser } from './browser.js';

/*
 * The dashboard at /ui in a real browser (Chromium from @sparticuz/chromium, headless), against a
 * real broker in this process: typed into and clicked like a user would, waiting on what the page
 * shows, never on the clock. One browser and one tab for the file; each test loads the page anew
 * from its own broker.
 */

/**
 * What the code run inside the page uses of the browser's globals, typed here because the project's
 * TypeScript has no DOM library (callbacks run in the page reach them through globalThis).
 */
interface InPage {
  document: {
    querySelector(selector: string): PageElement | null;
    querySelectorAll(selector: string): { length: number };
    documentElement: { scrollWidth: number };
  };
  location: { hash: string };
  innerWidth: number;
  innerHeight: number;
  scrollTo(x: number, y: number): void;
  Image: new () => { src: string; width: number; height: number; decode(): Promise<void> };
  OffscreenCanvas: new (
    width: number,
    height: number,
  ) => {
    getContext(kind: '2d'): {
      drawImage(image: unknown, x: number, y: number): void;
      getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
    };
  };
}
interface PageElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
  scrollIntoView(options: { block: string; inline: string }): void;
  getBoundingClientRect(): { left: number; top: number; right: number; bottom: number; width: number; height: number };
}

const VIEWPORT = { width: 1280, height: 900 };
/** Page conditions are checked every so often rather than on every animation frame: the machine is small and shared. */
const POLL = { timeout: WAIT.timeout, polling: 50 };
/** RILL_UI_SCREENSHOTS=<dir> keeps the screenshots there; otherwise they go to a temporary directory, removed after the file. */
const keptScreenshots = process.env.RILL_UI_SCREENSHOTS;
const screenshots = keptScreenshots ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rill-ui-screenshots-'));

const tab = useBrowser(VIEWPORT);
let page: Page;
/** Uncaught exceptions in the page: any one fails the test it happened in. */
const pageErrors = tab.pageErrors;

beforeAll(() => {
  page = tab.page;
});

afterAll(() => {
  if (keptScreenshots === undefined) fs.rmSync(screenshots, { recursive: true, force: true });
});

/** Clears a field and types into it, as a user does. */
async function fill(selector: string, text: string): Promise<void> {
  await page.click(selector);
  await page.keyboard.down('Control');
  await page.keyboard.press('a');
  await page.keyboard.up('Control');
  await page.keyboard.press('Backspace');
  if (text !== '') await page.type(selector, text);
}

async function textOf(selector: string): Promise<string> {
  return page.$eval(selector, (element) => element.textContent ?? '');
}

/** Waits until the element's text contains `expected` (or is exactly it). */
async function waitForText(selector: string, expected: string, { exact = false } = {}): Promise<void> {
  try {
    await page.waitForFunction(
      (s, e, whole) => {
        const text = (globalThis as unknown as InPage).document.querySelector(s)?.textContent;
        return typeof text === 'string' && (whole ? text === e : text.includes(e));
      },
      POLL,
      selector,
      expected,
      exact,
    );
  } catch (error) {
    const shown = await page.$eval(selector, (element) => element.textContent).catch(() => '(no such element)');
    throw new Error(`"${selector}" never showed "${expected}"; it shows "${shown}" (${(error as Error).message})`);
  }
}

/** Waits until an attribute of the element is a number of at least `least`. */
async function waitForAttributeAtLeast(selector: string, attribute: string, least: number): Promise<void> {
  await page.waitForFunction(
    (s, a, n) => Number((globalThis as unknown as InPage).document.querySelector(s)?.getAttribute(a) ?? Number.NaN) >= n,
    POLL,
    selector,
    attribute,
    least,
  );
}

async function waitForCount(selector: string, count: number): Promise<void> {
  await page.waitForFunction((s, n) => (globalThis as unknown as InPage).document.querySelectorAll(s).length === n, POLL, selector, count);
}

/** The number a figure of the page shows (`data-stat`), commas and units left out. */
async function figure(name: string): Promise<number> {
  return Number.parseFloat((await textOf(`[data-stat="${name}"]`)).replace(/,/g, ''));
}

/** Confirms the dialog the page opened before something it cannot undo. */
async function confirmDialog(): Promise<void> {
  await page.waitForSelector('dialog#confirm[open]', POLL);
  await page.click('#confirm-ok');
  await page.waitForSelector('dialog#confirm:not([open])', POLL);
}

/**
 * The screenshot check of a page: the screenshot is not blank (many colours, not one background),
 * and each of the page's main elements has a size and fits in the viewport once scrolled to (a
 * broken layout, an element squashed to nothing or pushed off the side, fails). No page scrolls sideways.
 */
async function checkLayout(name: string, mainElements: string[]): Promise<void> {
  await page.evaluate(() => (globalThis as unknown as InPage).scrollTo(0, 0));
  const file = path.join(screenshots, `${name}.png`);
  const png = await page.screenshot({ path: file, fullPage: true });
  const picture = await page.evaluate(
    async (dataUrl) => {
      const { Image, OffscreenCanvas } = globalThis as unknown as InPage;
      const image = new Image();
      image.src = dataUrl;
      await image.decode();
      const canvas = new OffscreenCanvas(image.width, image.height);
      const context = canvas.getContext('2d');
      context.drawImage(image, 0, 0);
      const { data } = context.getImageData(0, 0, image.width, image.height);
      const colours = new Map<number, number>();
      for (let i = 0; i < data.length; i += 4) {
        const colour = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
        colours.set(colour, (colours.get(colour) ?? 0) + 1);
      }
      const commonest = Math.max(...colours.values());
      return { width: image.width, height: image.height, colours: colours.size, backgroundShare: commonest / (data.length / 4) };
    },
    `data:image/png;base64,${Buffer.from(png).toString('base64')}`,
  );
  expect(picture.width, `${name}: screenshot width`).toBe(VIEWPORT.width);
  expect(picture.colours, `${name}: colours in the screenshot (${file})`).toBeGreaterThan(50);
  expect(picture.backgroundShare, `${name}: share of the screenshot in its commonest colour (${file})`).toBeLessThan(0.95);

  const layout = await page.evaluate((selectors) => {
    const browser = globalThis as unknown as InPage;
    const doc = browser.document;
    const boxes = selectors.map((selector) => {
      const element = doc.querySelector(selector);
      if (element === null) return { selector, missing: true, left: 0, top: 0, right: 0, bottom: 0, width: 0, height: 0 };
      element.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const { left, top, right, bottom, width, height } = element.getBoundingClientRect();
      return { selector, missing: false, left, top, right, bottom, width, height };
    });
    browser.scrollTo(0, 0);
    return { boxes, viewportWidth: browser.innerWidth, viewportHeight: browser.innerHeight, pageWidth: doc.documentElement.scrollWidth };
  }, mainElements);
  expect(layout.pageWidth, `${name}: the page is wider than the window`).toBeLessThanOrEqual(layout.viewportWidth);
  for (const box of layout.boxes) {
    const where = `${name}: ${box.selector} at ${JSON.stringify(box)}`;
    expect(box.missing, `${name}: ${box.selector} is missing`).toBe(false);
    expect(box.width, where).toBeGreaterThan(0);
    expect(box.height, where).toBeGreaterThan(0);
    // Within a pixel: the browser scrolls by whole pixels, and an element's edges may fall between two.
    expect(box.left, where).toBeGreaterThanOrEqual(-1);
    expect(box.top, where).toBeGreaterThanOrEqual(-1);
    expect(box.right, where).toBeLessThanOrEqual(layout.viewportWidth + 1);
    expect(box.bottom, where).toBeLessThanOrEqual(layout.viewportHeight + 1);
  }
}

// A browser on a small shared machine: more time than the suite's default, still bounded.
describe('the dashboard at /ui', { timeout: 60_000 }, () => {
  const servers = useServers();
  const clients: StompJsClient[] = [];
  // Registered after useServers: runs before the servers close (after-hooks run last registered first), so the page's connections end first.
  afterEach(async () => {
    await page.goto('about:blank');
    await Promise.all(clients.splice(0).map((client) => client.deactivate()));
    tab.requests.splice(0);
    expect(pageErrors.splice(0), 'uncaught exceptions in the page').toEqual([]);
  });

  const open = async (server: TestServer, route: string) => {
    await page.goto(`${httpBase(server.httpPort)}/ui#${route}`);
  };
  const outsideClient = async (server: TestServer): Promise<StompJsClient> => {
    const client = await connectStompJs(server.wsUrl);
    clients.push(client);
    return client;
  };

  it('serves the page at /ui and /ui/, its modules, rill/client and @stomp/stompjs as ES modules, and nothing outside them', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    for (const route of ['/ui', '/ui/']) {
      const answer = await fetch(`${base}${route}`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const html = await answer.text();
      expect(html).toContain('<script type="module" src="/ui/app.js">');
      // The import map resolves the client's one bare import, and comes before the first module.
      const importMap = /<script type="importmap">(.*?)<\/script>/s.exec(html);
      expect(JSON.parse(importMap![1]!)).toEqual({
        imports: { 'rill/client': '/ui/vendor/rill-client/index.js', '@stomp/stompjs': '/ui/vendor/stompjs/index.js' },
      });
      expect(importMap!.index).toBeLessThan(html.indexOf('<script type="module"'));
    }
    const script = await fetch(`${base}/ui/app.js`);
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect((await fetch(`${base}/ui/style.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');

    // rill/client as npm run build made it (the tests' global setup builds dist/ first), and @stomp/stompjs' ES module build.
    const client = await fetch(`${base}/ui/vendor/rill-client/index.js`);
    expect(client.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(await client.text()).toBe(fs.readFileSync(new URL('../../dist/client/index.js', import.meta.url), 'utf8'));
    const connection = await (await fetch(`${base}/ui/vendor/rill-client/connection.js`)).text();
    expect(connection).toContain("from '@stomp/stompjs'");
    for (const module of ['/ui/vendor/stompjs/index.js', '/ui/vendor/stompjs/client.js', '/ui/vendor/stompjs/compatibility/stomp.js']) {
      const answer = await fetch(`${base}${module}`);
      expect(answer.status, module).toBe(200);
      expect(answer.headers.get('content-type'), module).toBe('text/javascript; charset=utf-8');
    }
    for (const outside of [
      '/ui/%2e%2e/package.json',
      '/ui/..%2fpackage.json',
      '/ui/missing.js',
      '/ui/app.ts',
      // The old UMD bundle the page loaded by a script tag: the page uses rill/client now.
      '/ui/vendor/stomp.umd.min.js',
      '/ui/vendor/rill-client/index.d.ts',
      '/ui/vendor/rill-client/index.js.map',
      '/ui/vendor/rill-client/missing.js',
      '/ui/vendor/rill-client/%2e%2e/index.js',
      '/ui/vendor/rill-client/..%2f..%2fpackage.json',
      '/ui/vendor/rill-client/%2e%2e%2f%2e%2e%2fsrc%2findex.js',
      '/ui/vendor/stompjs/..%2fpackage.json',
      '/ui/vendor/stompjs/%2e%2e/bundles/stomp.umd.min.js',
      '/ui/vendor/stompjs/compatibility/..%2findex.js',
      '/ui/vendor/stompjs/index.d.ts',
    ]) {
      expect((await fetch(`${base}${outside}`)).status, outside).toBe(404);
    }
  });

  it('creates a topic through the form, tails it live, shows messages published from the page and from outside, alters and deletes it', async () => {
    const server = await servers.start();
    await open(server, '/topics');
    await page.waitForSelector('#create-topic', POLL);
    await page.type('#create-topic input[name="name"]', 'orders');
    await page.type('#create-topic input[name="partitions"]', '3');
    await page.click('#create-topic summary');
    await page.select('#create-topic select[name="compression"]', 'lz4');
    await page.click('#create-topic button[type="submit"]');
    await page.waitForSelector('#topics-table tr[data-topic="orders"]', POLL);
    await waitForText('#create-topic-status', 'Created orders with 3 partitions');
    expect(server.broker.topics.get('orders')).toMatchObject({ partitions: 3, ownSettings: { compression: 'lz4' } });
    await checkLayout('topics', ['header.top', '#nav', 'main h1', '#create-topic', '#topics-table']);

    await page.click('#topics-table tr[data-topic="orders"] a');
    await page.waitForSelector('#partitions-table tr[data-partition="2"]', POLL);
    expect(await textOf('#config-table tr[data-setting="compression"] .badge')).toBe('lz4');
    // The tail says it has started once the broker confirmed the subscription: nothing published after that is missed.
    await page.click('#tail-toggle');
    await waitForText('#tail-toggle', 'Stop tail');

    await page.type('#publish input[name="key"]', 'customer-1');
    await fill('#publish textarea[name="body"]', '{"item":"book","quantity":2}');
    await page.click('#publish button[type="submit"]');
    await waitForText('#publish-status', 'Stored in partition');

    const outside = await outsideClient(server);
    const outsideBody = canonical('order-2', 'customer-2', { item: 'lamp', quantity: 1 }, 1_700_000_000_000);
    await publishWithReceipt(outside, '/producer/publish/orders', outsideBody);

    await waitForCount('#tail-messages .message', 2);
    const shown = await page.$$eval('#tail-messages .message', (cards) =>
      cards.map((card) => ({
        key: card.querySelector('.key')?.textContent,
        body: card.querySelector('pre.body')?.textContent ?? '',
        place: card.querySelector('.place')?.textContent,
      })),
    );
    expect(shown[0]).toMatchObject({ key: 'key customer-2', body: JSON.stringify(JSON.parse(outsideBody), null, 2) });
    // The page publishes with rill/client: the typed body is the value of the canonical envelope, stored (and shown) as it.
    expect(shown[1]!.key).toBe('key customer-1');
    expect(JSON.parse(shown[1]!.body)).toMatchObject({ messageID: expect.any(String), key: 'customer-1', message: { item: 'book', quantity: 2 } });
    // The place the acknowledgment gave is where the tail found the message.
    const acknowledged = /Stored in partition (\d+) at offset (\d+)\./.exec(await textOf('#publish-status'));
    expect(shown[1]!.place).toBe(`partition ${acknowledged![1]} · offset ${acknowledged![2]}`);
    await waitForText('#tail-count', '2 received');
    // The page talks to the broker through rill/client, served from dist/client/ with @stomp/stompjs' ES modules under it.
    const loaded = requestedPaths(tab.requests);
    expect(loaded).toEqual(expect.arrayContaining(['/ui/vendor/rill-client/index.js', '/ui/vendor/rill-client/tail.js', '/ui/vendor/stompjs/index.js']));
    expect(loaded.filter((loadedPath) => loadedPath.includes('umd'))).toEqual([]);
    // The partitions table catches up with the two messages at its next refresh.
    await waitForText('[data-stat="messages"]', '2', { exact: true });
    await checkLayout('topic', ['header.top', 'main h1', '#delete-topic', '#partitions-table', '#config-table', '#alter-topic', '#publish', '#tail']);

    await page.select('#alter-topic select[name="setting"]', 'retentionMs');
    await page.type('#alter-topic input[name="value"]', '60000');
    await page.click('#alter-topic button[type="submit"]');
    await waitForText('#alter-status', 'retentionMs is now 60000');
    await waitForText('#config-table tr[data-setting="retentionMs"] .badge', '60000');
    expect(server.broker.topics.get('orders')?.ownSettings.retentionMs).toBe(60_000);

    await page.click('#delete-topic');
    await confirmDialog();
    await page.waitForFunction(() => (globalThis as unknown as InPage).location.hash === '#/topics', POLL);
    await page.waitForSelector('#topics-table, p.empty', POLL);
    await waitForText('main', 'No topics yet.');
    expect(server.broker.topics.get('orders')).toBeUndefined();
  });

  it('takes the live tail up again after its connection drops, without showing a message twice, and publishes on the new connection', async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/topics', { name: 'events', partitions: 2 })).status).toBe(201);
    const outside = await outsideClient(server);
    for (let i = 0; i < 4; i++) await publishWithReceipt(outside, '/producer/publish/events', canonical(`before-${i}`, `k-${i}`, i));
    await open(server, '/topics/events');
    await page.waitForSelector('#tail-toggle', POLL);
    await page.select('#tail-from', 'earliest');
    await page.click('#tail-toggle');
    await waitForText('#tail-toggle', 'Stop tail');
    await waitForCount('#tail-messages .message', 4);

    // An operator closes the page's connection (the one with the tail's subscription): rill/client reconnects by itself.
    const listed = await call(base, 'GET', '/v1/connections');
    const ours = (listed.body.connections as Array<{ session: string; subscriptions: string[] }>).filter(
      (connection) => connection.session !== outside.connectedFrame.headers.session,
    );
    expect(ours).toHaveLength(1);
    expect((await call(base, 'DELETE', `/v1/connections/${ours[0]!.session}`)).status).toBe(200);
    await waitForText('#stomp-status', 'connecting…');
    await waitForText('#stomp-status', '', { exact: true });

    for (let i = 0; i < 2; i++) await publishWithReceipt(outside, '/producer/publish/events', canonical(`after-${i}`, `k-${i}`, i));
    await fill('#publish textarea[name="body"]', 'plain text');
    await page.click('#publish button[type="submit"]');
    await waitForText('#publish-status', 'Stored in partition');
    await waitForCount('#tail-messages .message', 7);
    await waitForText('#tail-count', '7 received');
    const places = await page.$$eval('#tail-messages .message', (cards) => cards.map((card) => card.querySelector('.place')?.textContent));
    expect(new Set(places).size, `each message once: ${places.join(', ')}`).toBe(7);
    // A body that is not JSON is published as a JSON string.
    expect(JSON.parse(await textOf('#tail-messages .message pre.body'))).toMatchObject({ message: 'plain text' });
    const sessions = (await call(base, 'GET', '/v1/connections')).body.connections.map((connection: { session: string }) => connection.session);
    expect(sessions).not.toContain(ours[0]!.session);
    expect(sessions).toHaveLength(2);
  });

  it('moves the overview throughput chart and counters when messages are published', async () => {
    const server = await servers.start();
    const outside = await outsideClient(server);
    await publishWithReceipt(outside, '/producer/publish/events', canonical('first', 'k', 1));
    await open(server, '/');
    // A rate takes two readings of the counters: the first point comes at the second.
    await waitForAttributeAtLeast('[data-chart="throughput"]', 'data-points', 1);
    const pointsBefore = Number(await page.$eval('[data-chart="throughput"]', (chart) => chart.getAttribute('data-points')));
    expect(await figure('connections')).toBe(1);
    expect(await figure('topics')).toBe(1);

    for (let i = 0; i < 30; i++) await publishWithReceipt(outside, '/producer/publish/events', canonical(`m-${i}`, `k-${i % 3}`, i));
    await page.waitForFunction(
      () => Number.parseFloat((globalThis as unknown as InPage).document.querySelector('[data-stat="rate-in"]')?.textContent ?? '0') > 0,
      POLL,
    );
    await waitForAttributeAtLeast('[data-chart="throughput"]', 'data-points', pointsBefore + 1);
    // The line of messages in rises off the chart's floor.
    const inLine = await page.$eval('[data-chart="throughput"] polyline', (line) => line.getAttribute('points') ?? '');
    const heights = inLine.split(' ').map((point: string) => Number(point.split(',')[1]));
    expect(Math.min(...heights)).toBeLessThan(160);
    await page.waitForSelector('#busiest-topics tr a[href="#/topics/events"]', POLL);
    await checkLayout('overview', [
      'header.top',
      'main h1',
      '[data-stat="rate-in"]',
      '[data-stat="groups"]',
      '[data-chart="throughput"] .plot',
      '#busiest-topics',
    ]);
  });

  it("shows a group's lag fall as its member commits, and resets its offsets after a dry run", async () => {
    const server = await servers.start();
    const base = httpBase(server.httpPort);
    expect((await call(base, 'POST', '/v1/topics', { name: 'payments', partitions: 2 })).status).toBe(201);
    const outside = await outsideClient(server);
    for (let i = 0; i < 10; i++) await publishWithReceipt(outside, '/producer/publish/payments', canonical(`p-${i}`, `account-${i}`, { amount: i }));
    const joined = await call(base, 'POST', '/v1/groups/billing/members', { member: 'm1', topics: ['payments'] });
    expect(joined.status).toBe(200);

    await open(server, '/groups');
    await page.waitForSelector('#groups-table tr[data-group="billing"]', POLL);
    await checkLayout('groups', ['header.top', 'main h1', '#groups-table']);
    await page.click('#groups-table tr[data-group="billing"] a');
    await page.waitForSelector('#members-table tr[data-member="m1"]', POLL);
    await waitForText('[data-stat="lag"]', '10', { exact: true });

    // The member reads everything and commits: the page's lag falls to 0.
    const pulled = await call(base, 'POST', '/v1/groups/billing/members/m1/pull', { maxMessages: 100 });
    expect(pulled.body.records).toHaveLength(10);
    const next = new Map<number, number>();
    for (const record of pulled.body.records as Array<{ partition: number; offset: number }>) {
      next.set(record.partition, Math.max(next.get(record.partition) ?? 0, record.offset + 1));
    }
    const offsets = [...next].map(([partition, offset]) => ({ topic: 'payments', partition, offset }));
    expect((await call(base, 'POST', '/v1/groups/billing/members/m1/commit', { generation: pulled.body.generation, offsets })).status).toBe(200);
    await waitForText('[data-stat="lag"]', '0', { exact: true });
    expect(await page.$$eval('#lag-table tbody tr', (rows) => rows.map((row) => row.getAttribute('data-lag')))).toEqual(['0', '0']);
    // The lag chart has the fall: a point at 10, and the latest at 0.
    await waitForAttributeAtLeast('[data-chart="lag"]', 'data-points', 2);
    await waitForText('[data-chart="lag"] .legend-value', '0', { exact: true });
    const lagLine = await page.$eval('[data-chart="lag"] polyline', (line) => line.getAttribute('points') ?? '');
    const lagHeights = lagLine.split(' ').map((point: string) => Number(point.split(',')[1]));
    expect(lagHeights[0], 'the first lag point stands above the last').toBeLessThan(lagHeights.at(-1)!);
    await checkLayout('group', ['header.top', 'main h1', '[data-stat="lag"]', '[data-chart="lag"] .plot', '#lag-table', '#members-table', '#reset-offsets']);

    // A dry run shows what a reset would commit and changes nothing; applying it needs the group empty.
    await page.select('#reset-offsets select[name="to"]', 'earliest');
    await page.click('#reset-dry-run');
    await waitForText('#reset-status', 'Dry run: nothing changed yet');
    expect(await page.$$eval('#reset-result tbody tr', (rows) => rows.map((row) => row.lastElementChild?.textContent))).toEqual(['0', '0']);
    expect((await call(base, 'GET', '/v1/groups/billing/lag')).body.partitions.map((p: { offset: number }) => p.offset).sort()).toEqual(
      [...next.values()].sort(),
    );
    await page.click('#reset-apply');
    await waitForText('#reset-status', 'offsets can be reset only when it has none');

    expect((await call(base, 'DELETE', '/v1/groups/billing/members/m1')).status).toBe(200);
    await waitForText('[data-stat="members"]', '0', { exact: true });
    await page.click('#reset-dry-run');
    await waitForText('#reset-status', 'Dry run');
    await page.click('#reset-apply');
    await waitForText('#reset-status', 'Offsets reset.');
    await waitForText('[data-stat="lag"]', '10', { exact: true });
  });

  it('lists the STOMP connections and closes one from the page', async () => {
    const server = await servers.start();
    const client = await outsideClient(server);
    client.subscribe('/topic/watched', () => {});
    const session = client.connectedFrame.headers.session!;
    await open(server, '/connections');
    await page.waitForSelector(`#connections-table tr[data-session="${session}"]`, POLL);
    const row = await page.$$eval(`#connections-table tr[data-session="${session}"] td`, (cells) => cells.map((cell) => cell.textContent));
    expect(row.slice(0, 4)).toEqual([session, expect.stringMatching(/^127\.0\.0\.1:\d+$/), 'anonymous', 'websocket']);
    await checkLayout('connections', ['header.top', 'main h1', '#connections-table', `button[data-close="${session}"]`]);

    await page.click(`button[data-close="${session}"]`);
    await confirmDialog();
    await waitForText('#connections-status', `Closed ${session}.`);
    await until('the client to get the ERROR', () => client.errors.find((frame) => frame.headers.code === 'closed-by-operator'));
    await waitForCount(`#connections-table tr[data-session="${session}"]`, 0);
  });

  it('asks for credentials when the broker needs them, and signs in the API calls and the STOMP connection with them', async () => {
    const server = await servers.start({
      auth: {
        users: [{ name: 'operator', passwordHash: await hashPassword('operator-password'), roles: ['admin'] }],
        acls: [
          { principal: 'role:admin', resource: 'topic:*', operations: ['all'] },
          { principal: 'role:admin', resource: 'group:*', operations: ['all'] },
          { principal: 'role:admin', resource: 'cluster', operations: ['all'] },
        ],
      },
    });
    await open(server, '/topics');
    await page.waitForSelector('dialog#login[open]', POLL);
    await page.type('#login-form input[name="user"]', 'operator');
    await page.type('#login-form input[name="password"]', 'not-the-password');
    await page.click('#login-form button[type="submit"]');
    await waitForText('#login-error', 'refused');
    await page.type('#login-form input[name="user"]', 'operator');
    await page.type('#login-form input[name="password"]', 'operator-password');
    await page.click('#login-form button[type="submit"]');
    await page.waitForSelector('dialog#login:not([open])', POLL);
    await waitForText('#session', 'signed in as operator');

    await page.type('#create-topic input[name="name"]', 'audited');
    await page.click('#create-topic button[type="submit"]');
    await page.waitForSelector('#topics-table tr[data-topic="audited"]', POLL);
    await page.click('#topics-table tr[data-topic="audited"] a');
    await page.waitForSelector('#tail-toggle', POLL);
    await page.click('#tail-toggle');
    await waitForText('#tail-toggle', 'Stop tail');
    const basic = `Basic ${Buffer.from('operator:operator-password').toString('base64')}`;
    const listed = await fetch(`${httpBase(server.httpPort)}/v1/connections`, { headers: { authorization: basic } });
    const { connections } = (await listed.json()) as { connections: Array<{ transport: string; principal: string }> };
    expect(connections).toEqual([expect.objectContaining({ transport: 'websocket', principal: 'operator' })]);
  });
  it('asks for the new password when a change of it ends the STOMP connection, and takes the tail up again without showing a message twice', async () => {
    const operator = async (password: string) => [{ name: 'operator', passwordHash: await hashPassword(password), roles: ['admin'] }];
    const server = await servers.start({
      auth: {
        users: await operator('first-password'),
        acls: [
          { principal: 'role:admin', resource: 'topic:*', operations: ['all'] },
          { principal: 'role:admin', resource: 'cluster', operations: ['all'] },
        ],
      },
    });
    const base = httpBase(server.httpPort);
    const signIn = async (password: string) => {
      await page.waitForSelector('dialog#login[open]', POLL);
      await page.type('#login-form input[name="user"]', 'operator');
      await page.type('#login-form input[name="password"]', password);
      await page.click('#login-form button[type="submit"]');
      await page.waitForSelector('dialog#login:not([open])', POLL);
    };
    /** The STOMP connections but `outside`'s, as the broker lists them. */
    const pageConnections = async (password: string, outside: StompJsClient) => {
      const authorization = `Basic ${Buffer.from(`operator:${password}`).toString('base64')}`;
      const { connections } = (await (await fetch(`${base}/v1/connections`, { headers: { authorization } })).json()) as {
        connections: Array<{ session: string; principal: string }>;
      };
      return connections.filter((connection) => connection.session !== outside.connectedFrame.headers.session);
    };
    let published = 0;
    const publishAs = async (password: string, count: number) => {
      const outside = await connectStompJs(server.wsUrl, { login: 'operator', passcode: password });
      clients.push(outside);
      for (let i = 0; i < count; i++, published++) {
        await publishWithReceipt(outside, '/producer/publish/audit', canonical(`m-${published}`, `k-${published}`, published));
      }
      return outside;
    };
    const tailShowsEachOnce = async (count: number) => {
      await waitForCount('#tail-messages .message', count);
      await waitForText('#tail-count', `${count} received`);
      const places = await page.$$eval('#tail-messages .message', (cards) => cards.map((card) => card.querySelector('.place')?.textContent));
      expect(new Set(places).size, `each message once: ${places.join(', ')}`).toBe(count);
    };

    const before = await publishAs('first-password', 3);
    await open(server, '/topics/audit');
    await signIn('first-password');
    await page.waitForSelector('#tail-toggle', POLL);
    await page.select('#tail-from', 'earliest');
    await page.click('#tail-toggle');
    await waitForText('#tail-toggle', 'Stop tail');
    await tailShowsEachOnce(3);
    const [first] = await pageConnections('first-password', before);
    expect(first).toMatchObject({ principal: 'operator' });

    // The broker ends the connections signed in with a password that changed: the page asks for the new one, and connects with it.
    server.reload({ auth: { ...server.config.auth, users: await operator('second-password') }, tls: server.config.tls });
    await signIn('second-password');
    const after = await publishAs('second-password', 2);
    await vi.waitFor(async () => {
      const connections = await pageConnections('second-password', after);
      expect(connections).toEqual([expect.objectContaining({ principal: 'operator' })]);
      expect(connections[0]!.session).not.toBe(first!.session);
    }, WAIT);
    await waitForText('#stomp-status', '', { exact: true });
    await tailShowsEachOnce(5);
    await waitForText('#session', 'signed in as operator');
  });
});
