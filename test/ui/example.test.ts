import { afterEach, describe, expect, it } from 'vitest';
import { hashPassword } from '../../src/security/index.js';
import { WAIT } from '../helpers/clients.js';
import { httpBase } from '../helpers/http.js';
import { storedMessages, useServers } from '../helpers/server.js';
import { requestedPaths, useBrowser } from './browser.js';

/*
 * The browser example at /examples in a real browser (headless Chromium, as for the dashboard):
 * it publishes with rill/client, shows the broker's acknowledgment and tails the topic, with and
 * without authentication. Waits on what the page logs, never on the clock.
 */

/** What the code run inside the page uses of the browser's globals (the project's TypeScript has no DOM library). */
interface InPage {
  document: { getElementById(id: string): { textContent: string | null } | null };
}

const POLL = { timeout: WAIT.timeout, polling: 50 };

const tab = useBrowser({ width: 1024, height: 768 });

describe('the browser example at /examples', { timeout: 60_000 }, () => {
  const servers = useServers();
  // Registered after useServers: runs before the servers close, so the page's connection ends first.
  afterEach(async () => {
    await tab.page.goto('about:blank');
    tab.requests.splice(0);
    expect(tab.pageErrors.splice(0), 'uncaught exceptions in the page').toEqual([]);
  });

  const logText = () => tab.page.$eval('#log', (element) => element.textContent ?? '');

  /** Waits until the page's log has a line matching `pattern`, and returns the match. */
  async function logged(pattern: RegExp): Promise<RegExpExecArray> {
    try {
      await tab.page.waitForFunction(
        (source, flags) => new RegExp(source, flags).test((globalThis as unknown as InPage).document.getElementById('log')?.textContent ?? ''),
        POLL,
        pattern.source,
        pattern.flags,
      );
    } catch (error) {
      throw new Error(`the log never showed ${pattern}; it shows:\n${await logText()}(${(error as Error).message})`);
    }
    return pattern.exec(await logText())!;
  }

  it('publishes with rill/client and logs the acknowledgment, then tails the topic from the earliest offset', async () => {
    const server = await servers.start();
    // At /examples as at /examples/: the page's paths are absolute.
    await tab.page.goto(`${httpBase(server.httpPort)}/examples`);
    await logged(/connected to ws:\/\/127\.0\.0\.1:\d+\/stomp \(session [^)]+\)/);

    await tab.page.click('#send');
    // The acknowledgment says where the broker stored it; the tail then finds it there.
    const [, partition, offset] = await logged(/ack demo\/(\d+)@(\d+) messageID=[0-9a-f-]{36}\n/);
    expect(await storedMessages(server, 'demo')).toBe(1);
    await tab.page.click('#tail');
    await logged(/tailing demo from the earliest offset/);
    await logged(new RegExp(`demo/${partition}@${offset} key=user-1 "hello from the browser"\n`));

    // A second message comes to the tail live.
    await tab.page.click('#send');
    await logged(/ack demo\/\d+@\d+ messageID=[0-9a-f-]{36}\n.*ack demo\//s);
    await tab.page.waitForFunction(
      () => ((globalThis as unknown as InPage).document.getElementById('log')?.textContent ?? '').split('key=user-1').length - 1 === 2,
      POLL,
    );

    const loaded = requestedPaths(tab.requests);
    expect(loaded).toEqual(expect.arrayContaining(['/ui/vendor/rill-client/index.js', '/ui/vendor/stompjs/index.js']));
    expect(loaded.filter((loadedPath) => loadedPath.includes('umd'))).toEqual([]);
  });

  it('connects with the user and password typed in, after the broker refused the page without them', async () => {
    const server = await servers.start({
      auth: {
        users: [{ name: 'writer', passwordHash: await hashPassword('writer-password'), roles: ['writer'] }],
        acls: [
          { principal: 'role:writer', resource: 'topic:*', operations: ['all'] },
          { principal: 'role:writer', resource: 'cluster', operations: ['all'] },
        ],
      },
    });
    await tab.page.goto(`${httpBase(server.httpPort)}/examples/`);
    await logged(/not connected: unauthenticated: /);
    await logged(/type a user and password, then Connect/);

    await tab.page.type('#user', 'writer');
    await tab.page.type('#password', 'writer-password');
    await tab.page.click('#send');
    await logged(/connected to ws:\/\/127\.0\.0\.1:\d+\/stomp as writer/);
    await logged(/ack demo\/\d+@\d+ messageID=[0-9a-f-]{36}\n/);
    expect(await storedMessages(server, 'demo')).toBe(1);

    const basic = `Basic ${Buffer.from('writer:writer-password').toString('base64')}`;
    const listed = await fetch(`${httpBase(server.httpPort)}/v1/connections`, { headers: { authorization: basic } });
    const { connections } = (await listed.json()) as { connections: Array<{ transport: string; principal: string }> };
    expect(connections).toEqual([expect.objectContaining({ transport: 'websocket', principal: 'writer' })]);
  });
});
