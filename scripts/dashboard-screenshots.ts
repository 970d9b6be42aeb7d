/**
 * Takes the README's screenshots of the dashboard (docs/dashboard-*.png):
 * a demo queue in memory with a worker, a few schedules and a delegation
 * tree, photographed in headless Chromium on a laptop and a phone screen.
 *
 *   node scripts/dashboard-screenshots.ts       (needs /usr/bin/chromium)
 */
import { mkdirSync } from 'node:fs';
import { chromium, type Page } from 'playwright-core';
import { NonRetryableError, Queue, startHttpServer, Worker } from '../src/index.ts';

const out = new URL('../docs/', import.meta.url);
mkdirSync(out, { recursive: true });

const queue = await Queue.open(':memory:');
await queue.users.add('admin', { admin: true });
const { token } = await queue.users.issueToken('admin');
const server = await startHttpServer(queue, { port: 0, dashboard: true });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const worker = new Worker(queue, {
  concurrency: 6,
  pollIntervalMs: 50,
  handlers: {
    researcher: async (job, ctx) => {
      const steps = ['searching', 'reading sources', 'summarizing'];
      for (const [i, step] of steps.entries()) {
        await ctx.progress(((i + 1) / (steps.length + 1)) * 100, step);
        await ctx.log('info', `${step}…`, i === 0 ? { query: job.payload } : undefined);
        await sleep(job.metadata.slow ? 60_000 : 150);
      }
      if ((job.payload as { topic?: string }).topic === 'unknown') throw new NonRetryableError('no sources found');
      return { answer: `Three papers on ${(job.payload as { topic: string }).topic}` };
    },
    lead: async (job, ctx) => {
      await ctx.log('info', 'splitting the work');
      const children = [];
      for (const part of ['sources', 'outline']) children.push(await ctx.spawn({ agent: 'writer', instructions: `${part} for: ${job.instructions}` }));
      return { delegated: children.map((c) => c.id) };
    },
    writer: async (_job, ctx) => {
      await ctx.progress(50, 'drafting');
      await sleep(100);
      return { words: 812 };
    },
  },
});
await worker.start();

const topics = ['durable queues', 'leases', 'backoff', 'unknown', 'scheduling', 'fencing tokens', 'event sourcing', 'unknown'];
const done: Promise<unknown>[] = [];
for (const topic of topics) {
  const job = await queue.submit({ agent: 'researcher', owner: 'admin', instructions: `Find three papers on ${topic}`, payload: { topic }, maxAttempts: 1, tags: ['papers'] });
  done.push(queue.wait(job.id));
}
const graph = await queue.submitGraph([
  { ref: 'research', agent: 'researcher', owner: 'admin', instructions: 'Research the topic: durable execution', payload: { topic: 'durable execution' } },
  { ref: 'draft', agent: 'writer', owner: 'admin', instructions: 'Write the article', dependsOn: ['research'] },
  { ref: 'review', agent: 'writer', owner: 'admin', instructions: 'Review the draft', dependsOn: ['draft'] },
]);
const lead = await queue.submit({ agent: 'lead', owner: 'admin', instructions: 'An article on durable execution', payload: { words: 800 } });
await Promise.all([...done, queue.wait(graph[2].id), queue.wait(lead.id)]);
for (const child of (await queue.tree(lead.id)).children) await queue.wait(child.job.id);
const live = await queue.submit({ agent: 'researcher', owner: 'admin', instructions: 'Find three papers on agent memory', payload: { topic: 'agent memory' }, metadata: { slow: true } });
await queue.schedules.create({ name: 'nightly-report', description: 'the nightly summary of what ran', cron: '0 3 * * *', timezone: 'Europe/Paris', agent: 'writer' });
await queue.schedules.create({ name: 'inbox-check', interval: '15 minutes', agent: 'researcher', payload: { topic: 'inbox' } });
await queue.schedules.runNow('inbox-check');
await queue.schedules.disable('inbox-check');

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const shoot = async (page: Page, hash: string, ready: string, name: string) => {
  await page.goto(`${server.url}/${hash}`);
  await page.locator(ready).first().waitFor();
  await page.mouse.move(0, 0);
  await page.screenshot({ path: new URL(name, out).pathname, fullPage: true });
  console.log(`docs/${name}`);
};
for (const [suffix, viewport, scale] of [['', { width: 1280, height: 800 }, 1], ['-phone', { width: 390, height: 844 }, 2]] as const) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: scale, colorScheme: 'light' });
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await page.fill('#token', token);
  await page.click('#signin button[type=submit]');
  await page.locator('#live[data-state="live"]').waitFor();
  await shoot(page, '#/', '.chart rect.b-completed', `dashboard-overview${suffix}.png`);
  if (suffix) {
    await shoot(page, `#/jobs/${live.id}`, '[data-field="logs"] .log', `dashboard-job${suffix}.png`);
  } else {
    await shoot(page, '#/jobs', 'tr[data-job]', 'dashboard-jobs.png');
    await shoot(page, `#/jobs/${lead.id}`, '.tree-list', 'dashboard-job.png');
    await shoot(page, '#/schedules', 'tr[data-schedule]', 'dashboard-schedules.png');
  }
  await context.close();
}
await browser.close();
await queue.cancel(live.id);
await worker.stop();
await server.close();
await queue.close();
