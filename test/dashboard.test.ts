/**
 * The web dashboard in a real headless Chromium, against a real server on a
 * loopback port, on both engines: sign-in, live updates without a reload,
 * cancel, filters, schedules, escaping of everything a job carries, and the
 * refusal of requests without the cookie or from another origin.
 *
 * Needs Chromium at /usr/bin/chromium (apt-get install -y chromium; .ci/run
 * installs it). Without it these tests are skipped — loudly — unless CI=true,
 * where that fails the run.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { Queue, startHttpServer, Worker, type Handlers, type HttpServer } from '../src/index.ts';
import { forEachEngine, type Engine } from './helpers/engines.ts';
import { deferred, waitFor } from './helpers/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const unavailable = existsSync(CHROMIUM) ? undefined : `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`;
if (unavailable) {
  if (process.env.CI === 'true') throw new Error(`the dashboard tests need a browser: ${unavailable}`);
  process.stderr.write(`\n${'!'.repeat(78)}\n!! The dashboard tests are SKIPPED: ${unavailable}\n${'!'.repeat(78)}\n\n`);
}

let browser: Browser | undefined;
before(async () => {
  if (unavailable) return;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM });
});
after(async () => {
  await browser?.close();
});

interface Setup {
  queue: Queue;
  server: HttpServer;
  admin: string;
  alice: string;
  /** A new browser tab of its own (cookies apart), closed after the file. */
  tab(): Promise<Page>;
  /** A tab signed in with this token. */
  signedIn(token?: string): Promise<Page>;
  /** A worker with these handlers, stopped after the test file. */
  worker(handlers: Handlers): Promise<Worker>;
}

async function setup(engine: Engine): Promise<Setup> {
  const queue = await Queue.open(await engine.freshUrl());
  const contexts: BrowserContext[] = [];
  const workers: Worker[] = [];
  let server: HttpServer | undefined;
  // One hook, so the order is right: the pages go first, then workers, the server, the queue.
  after(async () => {
    for (const c of contexts) await c.close();
    for (const w of workers) await w.stop();
    await server?.close();
    await queue.close();
  });
  await queue.users.add('root', { admin: true });
  await queue.users.add('alice');
  const admin = (await queue.users.issueToken('root')).token;
  const alice = (await queue.users.issueToken('alice')).token;
  server = await startHttpServer(queue, { port: 0, dashboard: true });
  const url = server.url;
  const tab = async () => {
    const context = await browser!.newContext();
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    return page;
  };
  const signedIn = async (token = admin) => {
    const page = await tab();
    await page.goto(`${url}/`);
    await page.fill('#token', token);
    await page.click('#signin button[type=submit]');
    await page.locator('#nav').waitFor({ state: 'visible' });
    await page.locator('#live[data-state="live"]').waitFor();
    return page;
  };
  const worker = async (handlers: Handlers) => {
    const w = new Worker(queue, { handlers, pollIntervalMs: 50, concurrency: 4 });
    workers.push(w);
    await w.start();
    return w;
  };
  return { queue, server, admin, alice, tab, signedIn, worker };
}

/** A marker set on the page: still there later means the page was never reloaded. */
async function mark(page: Page): Promise<void> {
  await page.evaluate(() => Object.assign(window, { __notReloaded: true }));
}
async function notReloaded(page: Page): Promise<boolean> {
  return page.evaluate(() => (window as unknown as { __notReloaded?: boolean }).__notReloaded === true);
}

const describeBrowser = unavailable ? (name: string, body: () => void) => describe(`${name} SKIPPED: ${unavailable}`, { skip: unavailable }, body) : describe;

forEachEngine((engine) => {
  describeBrowser(`dashboard in Chromium [${engine.name}]`, () => {
    it('signs in with a token kept in an HttpOnly cookie, and out again', async () => {
      const { server, admin, tab, queue } = await setup(engine);
      await queue.submit({ agent: 'echo', owner: 'root' });
      const page = await tab();
      const response = await page.goto(`${server.url}/`);
      const csp = response!.headers()['content-security-policy'];
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      await page.locator('#signin').waitFor({ state: 'visible' });
      await page.fill('#token', 'aq_not-a-token');
      await page.click('#signin button[type=submit]');
      await page.locator('#signin-error', { hasText: 'unknown or revoked' }).waitFor();
      await page.fill('#token', admin);
      await page.click('#signin button[type=submit]');
      await page.locator('#who', { hasText: 'root (admin)' }).waitFor();
      await page.locator('.count .n[data-status="total"]', { hasText: '1' }).waitFor();

      const [cookie] = await page.context().cookies();
      assert.equal(cookie.name, 'agentq_session');
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.sameSite, 'Strict');
      assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the token');
      await page.reload();
      await page.locator('#who', { hasText: 'root' }).waitFor();

      await page.click('#signout');
      await page.locator('#signin').waitFor({ state: 'visible' });
      assert.deepEqual(await page.context().cookies(), []);
      const status = await page.evaluate(async () => (await fetch('/api/v1/jobs')).status);
      assert.equal(status, 401);
    });

    it('shows a job submitted through the API move to running and completed without a reload', async () => {
      const { server, admin, signedIn, worker } = await setup(engine);
      const page = await signedIn();
      await page.goto(`${server.url}/#/jobs`);
      await page.locator('.view[data-view="jobs"] table').waitFor();
      await mark(page);
      const release = deferred();
      const started = deferred();
      const submitted = await fetch(`${server.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'slow', instructions: 'take your time', payload: { n: 7 } }),
      });
      const job = (await submitted.json()) as { id: string };
      const row = page.locator(`tr[data-job="${job.id}"]`);
      await row.locator('.badge', { hasText: 'pending' }).waitFor();

      await worker({
        slow: async (_job, ctx) => {
          await ctx.progress(40, 'half way there');
          await ctx.log('info', 'working on it');
          started.resolve();
          await release.promise;
          return { answer: 42 };
        },
      });
      await row.locator('.badge', { hasText: 'running' }).waitFor();
      await started.promise;
      // Its page follows it too: progress, message, log lines, then the result.
      await row.locator('a').click();
      await page.locator('.job-head .badge', { hasText: 'running' }).waitFor();
      await page.locator('[data-field="progressMessage"]', { hasText: 'half way there' }).waitFor();
      await page.locator('[data-field="logs"] .msg', { hasText: 'working on it' }).waitFor();
      assert.equal(await page.locator('.progress-block progress').getAttribute('value'), '40');
      await page.locator('[data-field="instructions"]', { hasText: 'take your time' }).waitFor();
      release.resolve();
      await page.locator('.job-head .badge', { hasText: 'completed' }).waitFor();
      await page.locator('[data-field="result"]', { hasText: '"answer": 42' }).waitFor();
      await page.locator('.timeline li.t-completed').waitFor();
      assert.ok(await notReloaded(page), 'the page was not reloaded');

      await page.goto(`${server.url}/#/`);
      await page.locator('.count .n[data-status="completed"]', { hasText: '1' }).waitFor();
      await page.locator('.chart svg rect.b-completed').waitFor();
    });

    it('cancels a running job from its page: its handler’s signal fires', async () => {
      const { server, queue, signedIn, worker } = await setup(engine);
      const aborted = deferred<string>();
      await worker({
        stuck: async (_job, ctx) => {
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
          aborted.resolve(String(ctx.signal.reason?.message ?? ctx.signal.reason));
          throw ctx.signal.reason;
        },
      });
      const job = await queue.submit({ agent: 'stuck', owner: 'root' });
      await waitFor(async () => (await queue.get(job.id)).status === 'running', { what: 'the job to run' });
      const page = await signedIn();
      await page.goto(`${server.url}/#/jobs/${job.id}`);
      await page.locator('.job-head .badge', { hasText: 'running' }).waitFor();
      const cancel = page.locator('button[data-action="cancel"]');
      await cancel.click();
      await page.locator('button[data-action="cancel"][data-armed="true"]', { hasText: 'Really cancel?' }).waitFor();
      assert.equal((await queue.get(job.id)).status, 'running', 'one click only arms the button');
      await cancel.click();
      await page.locator('.job-head .badge', { hasText: 'cancelled' }).waitFor();
      assert.equal((await queue.get(job.id)).status, 'cancelled');
      await aborted.promise;
      await page.locator('button.retry').waitFor();
      await page.locator('[data-field="error"]', { hasText: 'cancelled from the dashboard' }).waitFor();
    });

    it('filters the table by status, agent, tag and id prefix, and pages through it', async () => {
      const { server, queue, signedIn } = await setup(engine);
      const a = await queue.submitMany(Array.from({ length: 55 }, () => ({ agent: 'alpha', owner: 'root' })));
      const b = await queue.submitMany([
        { agent: 'beta', owner: 'root', tags: ['blue'] },
        { agent: 'beta', owner: 'root', tags: ['green'] },
      ]);
      await queue.cancel(b[1].id);
      const page = await signedIn();
      await page.goto(`${server.url}/#/jobs`);
      await page.locator('tr[data-job]').nth(49).waitFor();
      assert.equal(await page.locator('tr[data-job]').count(), 50, 'a page of 50');
      await page.click('.pager button:has-text("Older")');
      await page.locator('.pager', { hasText: 'page 2' }).waitFor();
      await waitFor(async () => (await page.locator('tr[data-job]').count()) === 7, { what: 'the second page' });
      assert.equal(await page.locator(`tr[data-job="${a[0].id}"]`).count(), 1, 'the oldest job on the last page');

      await page.fill('input[name="agent"]', 'beta');
      await page.click('.filters button[type=submit]');
      await waitFor(async () => (await page.locator('tr[data-job]').count()) === 2, { what: 'beta only' });
      assert.match(page.url(), /agent=beta/);
      await page.selectOption('select[name="status"]', 'cancelled');
      await waitFor(async () => (await page.locator('tr[data-job]').count()) === 1 && (await page.locator(`tr[data-job="${b[1].id}"]`).count()) === 1, { what: 'beta, cancelled' });

      // Clear goes to #/jobs, and the view is drawn anew, with a new form, when the address
      // changes: a field filled before that is lost with the old form.
      const clear = async () => {
        await page.click('.filters button[type=reset]');
        await waitFor(async () => (await page.locator('tr[data-job]').count()) === 50, { what: 'the unfiltered first page' });
      };
      await clear();
      await page.fill('input[name="tag"]', 'blue');
      await page.click('.filters button[type=submit]');
      await waitFor(async () => (await page.locator('tr[data-job]').count()) === 1 && (await page.locator(`tr[data-job="${b[0].id}"]`).count()) === 1, { what: 'tag blue' });

      await clear();
      await page.fill('input[name="idPrefix"]', a[10].id.toLowerCase());
      await page.click('.filters button[type=submit]');
      await waitFor(async () => (await page.locator('tr[data-job]').count()) === 1 && (await page.locator(`tr[data-job="${a[10].id}"]`).count()) === 1, { what: 'the id searched for' });
      await page.fill('input[name="agent"]', 'nobody');
      await page.click('.filters button[type=submit]');
      await page.locator('td.empty', { hasText: 'No jobs match' }).waitFor();
    });

    it('shows what a job and its tree used, its budget and what is left', async () => {
      const { queue, server, signedIn, worker } = await setup(engine);
      await worker({ llm: async (job, ctx) => void (await ctx.usage({ model: 'm', inputTokens: 1200, outputTokens: 34, costUsd: 0.0125 })) });
      const job = await queue.submit({ agent: 'llm', owner: 'root', budget: { tokens: 5000 }, rateKey: 'model:m' });
      await queue.wait(job.id, { timeoutMs: 10_000 });
      const page = await signedIn();
      await page.goto(`${server.url}/#/jobs/${job.id}`);
      const fields = page.locator('dl.fields');
      await fields.locator('dd', { hasText: '1,234 tokens, $0.0125 (1 calls)' }).waitFor();
      await fields.locator('dd', { hasText: '5,000 tokens for its tree' }).waitFor();
      await fields.locator('dd', { hasText: '3,766 tokens' }).waitFor();
      await fields.locator('dd', { hasText: 'model:m' }).waitFor();
    });

    it('shows a job’s tree by the same 12-character short ids the CLI takes, one per job of a batch', async () => {
      const { queue, server, signedIn } = await setup(engine);
      const parent = await queue.submit({ agent: 'plan', owner: 'root' });
      const children = await queue.submitMany(Array.from({ length: 3 }, () => ({ agent: 'step', owner: 'root', parentId: parent.id })));
      const page = await signedIn();
      await page.goto(`${server.url}/#/jobs/${parent.id}`);
      const tree = page.locator('div.tree');
      await tree.locator('strong.mono', { hasText: parent.id.slice(0, 12) }).waitFor();
      for (const child of children) {
        const link = tree.locator(`a[href="#/jobs/${child.id}"]`);
        assert.equal(await link.textContent(), child.id.slice(0, 12));
        assert.equal((await queue.get((await link.textContent())!)).id, child.id, 'the short id finds its job');
      }
    });

    it('shows pending approvals in an inbox, and approves and rejects them from it', async () => {
      const { queue, server, signedIn, worker } = await setup(engine);
      await worker({
        gate: async (job, ctx) => {
          const ok = await ctx.approval({ title: `Ship ${job.instructions}?`, details: { version: job.instructions } });
          return { by: ok.by, comment: ok.comment };
        },
      });
      const yes = await queue.submit({ agent: 'gate', instructions: 'v1<script>', owner: 'root' });
      const page = await signedIn();
      await page.goto(`${server.url}/#/approvals`);
      const rowOf = (title: string) => page.locator('tr[data-approval]', { hasText: title });
      await rowOf('Ship v1<script>?').waitFor();
      await mark(page);
      // A new one arrives without a reload; titles are shown as text.
      const no = await queue.submit({ agent: 'gate', instructions: 'v2', owner: 'root' });
      await rowOf('Ship v2?').waitFor();
      await rowOf('Ship v1<script>?').locator('input[name=comment]').fill('looks good');
      await rowOf('Ship v1<script>?').locator('button[data-action="approve"]').click();
      assert.deepEqual((await queue.wait(yes.id, { timeoutMs: 10_000 })).result, { by: 'root', comment: 'looks good' });
      await rowOf('Ship v2?').locator('button[data-action="reject"]').click();
      const failed = await queue.wait(no.id, { timeoutMs: 10_000 });
      assert.equal(failed.error?.code, 'approval_rejected');
      await page.locator('td.empty', { hasText: 'Nothing is waiting' }).waitFor();
      assert.equal(await notReloaded(page), true);
      await page.goto(`${server.url}/#/approvals?all=1`);
      await rowOf('Ship v1<script>?').locator('.state', { hasText: 'approved' }).waitFor();
      await rowOf('Ship v2?').locator('.state', { hasText: 'rejected' }).waitFor();
    });

    it('disables, enables and runs a schedule', async () => {
      const { server, queue, signedIn } = await setup(engine);
      await queue.schedules.create({ name: 'nightly', cron: '0 3 * * *', agent: 'report', description: 'the nightly report' });
      const page = await signedIn();
      await page.goto(`${server.url}/#/schedules`);
      const row = page.locator('tr[data-schedule="nightly"]');
      await row.locator('.state', { hasText: 'enabled' }).waitFor();
      await row.locator('button[data-action="toggle"]', { hasText: 'Disable' }).click();
      await row.locator('.state', { hasText: 'disabled' }).waitFor();
      assert.equal((await queue.schedules.get('nightly')).enabled, false);
      await row.locator('button[data-action="toggle"]', { hasText: 'Enable' }).click();
      await row.locator('.state', { hasText: 'enabled' }).waitFor();
      assert.equal((await queue.schedules.get('nightly')).enabled, true);
      await row.locator('button[data-action="run"]').click();
      await page.locator('.notice', { hasText: 'nightly: submitted job' }).waitFor();
      const { jobs } = await queue.list({ agent: 'report' });
      assert.equal(jobs.length, 1);
      await row.locator(`a[title="${jobs[0].id}"]`).waitFor();
      await row.locator('button', { hasText: 'Executions' }).click();
      await page.locator(`tr.executions a[title="${jobs[0].id}"]`).waitFor();

      // A user sees the schedules but may not change them.
      const user = await setup(engine).then(async (s) => {
        await s.queue.schedules.create({ name: 'hourly', interval: '1 hour', agent: 'report' });
        return s;
      });
      const alicePage = await user.signedIn(user.alice);
      await alicePage.goto(`${user.server.url}/#/schedules`);
      await alicePage.locator('tr[data-schedule="hourly"] button[data-action="toggle"][disabled]').waitFor();
    });

    it('renders <script> and "><img onerror> in a job as text: nothing runs', async () => {
      const { server, queue, signedIn, worker } = await setup(engine);
      const script = '<script>window.__xss = "script"; alert("script")</script>';
      const img = '"><img src=x onerror="window.__xss = \'img\'; alert(\'img\')">';
      const job = await queue.submit({
        agent: 'evil',
        owner: 'root',
        instructions: `${script} and ${img}`,
        payload: { html: img, [script]: 1 },
        metadata: { note: img },
        maxAttempts: 1,
      });
      await worker({
        evil: async (_job, ctx) => {
          await ctx.progress(50, img);
          await ctx.log('warn', script, { img });
          throw new Error(`failed: ${img}`);
        },
      });
      await waitFor(async () => (await queue.get(job.id)).status === 'failed', { what: 'the job to fail' });
      const page = await signedIn();
      const dialogs: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.goto(`${server.url}/#/jobs/${job.id}`);
      await page.locator('[data-field="instructions"]', { hasText: script }).waitFor();
      await page.locator('[data-field="instructions"]', { hasText: img }).waitFor();
      await page.locator('[data-field="payload"]', { hasText: 'onerror' }).waitFor();
      await page.locator('[data-field="metadata"]', { hasText: 'onerror' }).waitFor();
      await page.locator('[data-field="error"]', { hasText: `failed: ${img}` }).waitFor();
      await page.locator('[data-field="logs"] .msg', { hasText: script }).waitFor();
      await page.locator('[data-field="progressMessage"]', { hasText: img }).waitFor();
      await page.goto(`${server.url}/#/jobs`);
      await page.locator(`tr[data-job="${job.id}"]`).waitFor();
      // Events arrive on the feed as text too.
      await page.goto(`${server.url}/#/events`);
      await queue.events.publish({ type: 'app.note', payload: { html: img } });
      await page.locator('.feed li[data-event="app.note"]', { hasText: 'onerror' }).waitFor();
      assert.equal(await page.locator('img').count(), 0, 'no <img> was made');
      assert.equal(await page.locator('main script').count(), 0, 'no <script> was made');
      assert.equal(await page.evaluate(() => (window as unknown as { __xss?: string }).__xss), undefined, 'no injected code ran');
      assert.deepEqual(dialogs, []);
    });

    it('refuses API calls without the cookie and state changes from another origin', async () => {
      const { server, queue, signedIn, tab } = await setup(engine);
      const job = await queue.submit({ agent: 'target', owner: 'root' });
      // Without a cookie: 401 for reads and writes.
      const anonymous = await tab();
      await anonymous.goto(`${server.url}/`);
      const statuses = await anonymous.evaluate(async (id) => [
        (await fetch('/api/v1/jobs')).status,
        (await fetch(`/api/v1/jobs/${id}/cancel`, { method: 'POST' })).status,
      ], job.id);
      assert.deepEqual(statuses, [401, 401]);

      // Another origin (same site, another port: the browser sends the SameSite=Strict cookie along).
      const evil = await listen((_req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(`<!doctype html><form id="f" method="post" action="${server.url}/api/v1/jobs/${job.id}/cancel"></form><p>evil</p>`);
      });
      const page = await signedIn();
      await page.goto(evil.url);
      const sent = await page.evaluate(
        async ({ url }) => {
          // A "simple" request (no preflight): it reaches the server with the cookie.
          await fetch(`${url}/api/v1/jobs`, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{"agent":"x"}' });
          return true;
        },
        { url: server.url },
      );
      assert.ok(sent);
      const [answer] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/cancel')), page.evaluate(() => (document.getElementById('f') as HTMLFormElement).submit())]);
      assert.equal(answer.status(), 403);
      assert.match(await answer.text(), /cross-site request refused/);
      assert.equal((await queue.get(job.id)).status, 'pending', 'not cancelled');
      assert.equal((await queue.list({ agent: 'x' })).jobs.length, 0, 'nothing submitted');
      // The same requests from the dashboard's own origin work.
      await page.goto(`${server.url}/`);
      await page.locator('#nav').waitFor({ state: 'visible' });
      const own = await page.evaluate(async (id) => (await fetch(`/api/v1/jobs/${id}/cancel`, { method: 'POST' })).status, job.id);
      assert.equal(own, 200);
      assert.equal((await queue.get(job.id)).status, 'cancelled');
    });
  });
});

/** A small HTTP server of its own (another origin), closed after the file. */
async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
