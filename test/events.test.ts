/** The event bus: job events in the same transaction as the change, published events, subscribers across connections. */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { ManualClock, NonRetryableError, Queue, ValidationError, Worker, type AgentqEvent } from '../src/index.ts';
import { forEachEngine, freshQueue } from './helpers/engines.ts';
import { deferred, waitFor } from './helpers/wait.ts';

const types = (events: AgentqEvent[], jobId?: string) =>
  events.filter((e) => jobId == null || e.jobId === jobId).map((e) => e.type);

forEachEngine((engine) => {
  describe(`events [${engine.name}]`, () => {
    it('records an event for every transition, in order, and none for a refused one', async () => {
      const { queue } = await freshQueue(engine);
      const gate = deferred();
      let calls = 0;
      const worker = new Worker(queue, {
        handlers: {
          w: async (job, ctx) => {
            await ctx.progress(50, 'half');
            if (job.payload === 'flaky' && ++calls === 1) throw new Error('once');
            if (job.payload === 'bad') throw new NonRetryableError('no');
            if (job.payload === 'slow') await gate.promise;
            return 'ok';
          },
        },
        pollIntervalMs: 50,
      });
      // Submitted before the worker starts, so the dependents see their dependencies unfinished.
      const ok = await queue.submit({ agent: 'w', payload: 'flaky', backoff: { delayMs: 0, jitter: false } });
      const bad = await queue.submit({ agent: 'w', payload: 'bad' });
      const dependent = await queue.submit({ agent: 'w', payload: 'dep', dependsOn: [bad.id] });
      const unblocked = await queue.submit({ agent: 'w', payload: 'after', dependsOn: [ok.id] });
      await worker.start();
      for (const id of [ok.id, bad.id, unblocked.id]) {
        await waitFor(async () => ['completed', 'failed'].includes((await queue.get(id)).status), {
          what: `job ${id} to finish`,
        });
      }
      const slow = await queue.submit({ agent: 'w', payload: 'slow' });
      await waitFor(async () => (await queue.get(slow.id)).progress === 50, { what: 'the slow job to report progress' });
      await queue.cancel(slow.id);
      gate.resolve();
      await worker.stop();
      // A refused change: cancelling a completed job writes no event.
      await assert.rejects(queue.cancel(ok.id));
      await queue.retry(bad.id);

      // On PostgreSQL an event is readable once every transaction older than it has ended
      // (so a reader never skips one): the last ones may take a moment.
      const all = await waitFor(
        async () => {
          const events = await queue.events.list({ limit: 1000 });
          const last = (id: string) => types(events, id).at(-1);
          return last(dependent.id) === 'job.cancelled' && last(bad.id) === 'job.retried' && last(slow.id) === 'job.cancelled' ? events : null;
        },
        { what: 'the last events to be readable' },
      );
      assert.deepEqual(types(all, ok.id), [
        'job.created',
        'job.started',
        'job.progress',
        'job.retrying',
        'job.started',
        'job.progress',
        'job.completed',
      ]);
      assert.deepEqual(types(all, bad.id), ['job.created', 'job.started', 'job.progress', 'job.failed', 'job.retried']);
      assert.deepEqual(types(all, dependent.id), ['job.created', 'job.cancelled']);
      assert.deepEqual(types(all, unblocked.id), ['job.created', 'job.unblocked', 'job.started', 'job.progress', 'job.completed']);
      assert.deepEqual(types(all, slow.id), ['job.created', 'job.started', 'job.progress', 'job.cancelled']);
      const ids = all.map((e) => e.id);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ids increase');
      const completed = all.find((e) => e.type === 'job.completed' && e.jobId === ok.id)!;
      assert.deepEqual(
        [completed.source, completed.target, (completed.payload as { status: string; attempt: number }).status, (completed.payload as { attempt: number }).attempt],
        ['agentq', 'w', 'completed', 2],
      );
      const failed = all.find((e) => e.type === 'job.failed')!;
      assert.equal((failed.payload as { error: { message: string } }).error.message, 'no');
    });

    it('publishes application events to everyone or to one agent, filtered by pattern', async () => {
      const { queue } = await freshQueue(engine);
      const start = await queue.events.lastId();
      await queue.events.publish({ type: 'email.processed', payload: { n: 1 } });
      await queue.events.publish({ type: 'email.bounced', target: 'mailer', source: 'smtp' });
      await queue.events.publish({ type: 'report.ready', target: 'writer' });
      const emails = await queue.events.list({ after: start, pattern: 'email.*' });
      assert.deepEqual(types(emails), ['email.processed', 'email.bounced']);
      assert.deepEqual(emails[0].payload, { n: 1 });
      assert.equal(emails[1].source, 'smtp');
      const forMailer = await queue.events.list({ after: start, target: 'mailer' });
      assert.deepEqual(types(forMailer), ['email.processed', 'email.bounced'], 'events for everyone and for mailer');
      assert.deepEqual(types(await queue.events.list({ after: start, pattern: ['*.ready', 'email.bounced'] })), [
        'email.bounced',
        'report.ready',
      ]);
      assert.deepEqual(types(await queue.events.list({ after: start, pattern: 'EMAIL.*' })), [], 'patterns match case exactly');
      for (const [input, field] of [
        [{ type: '' }, 'type'],
        [{ type: 'job.completed' }, 'type'],
        [{ type: 'has space' }, 'type'],
        [{ type: 'ok', target: 5 }, 'target'],
        [{ type: 'ok', colour: 'red' }, 'colour'],
      ] as const) {
        await assert.rejects(queue.events.publish(input as never), (e: ValidationError) => e instanceof ValidationError && e.field === field);
      }
      assert.throws(() => queue.events.subscribe('bad pattern!', () => {}), ValidationError);
      assert.equal((await queue.events.list({ after: start })).length, 3, 'nothing stored from bad input');
    });

    it('delivers to a subscriber on another connection, and resumes after the last id with no gap and no duplicate', async () => {
      const { queue, url } = await freshQueue(engine);
      const other = await Queue.open(url);
      const seen: AgentqEvent[] = [];
      const sub = other.events.subscribe('app.*', (e) => void seen.push(e), { after: 0, pollMs: 60_000 });
      for (let i = 0; i < 5; i++) await queue.events.publish({ type: 'app.tick', payload: i });
      await waitFor(() => seen.length === 5, { what: 'five events through the change hint' });
      sub.close();
      const resumeAfter = sub.lastId;
      for (let i = 5; i < 10; i++) await queue.events.publish({ type: 'app.tick', payload: i });
      await queue.submit({ agent: 'x' }); // not app.*
      const again = other.events.subscribe('app.*', (e) => void seen.push(e), { after: resumeAfter, pollMs: 60_000 });
      await waitFor(() => seen.length === 10, { what: 'the five missed events' });
      assert.deepEqual(
        seen.map((e) => e.payload),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      again.close();
      await other.close();
    });

    it('listens: blocks until an event comes, or returns nothing at the timeout', async () => {
      const { queue, url } = await freshQueue(engine);
      const other = await Queue.open(url);
      assert.deepEqual(await queue.events.listen({ pattern: 'never.*', timeoutMs: 20 }), []);
      const waiting = queue.events.listen({ pattern: 'ping', timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 5));
      await other.events.publish({ type: 'ping', payload: 'hello' });
      const got = await waiting;
      assert.deepEqual(got.map((e) => e.payload), ['hello']);
      await other.close();
    });

    it('lets handlers publish, and removes old events by retention', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const worker = new Worker(queue, {
        handlers: { w: async (_job, ctx) => void (await ctx.publish({ type: 'work.done', payload: { ok: true } })) },
        pollIntervalMs: 20,
      });
      await worker.start();
      const job = await queue.submit({ agent: 'w', owner: 'ann' });
      const [done] = await queue.events.listen({ pattern: 'work.done', after: 0, timeoutMs: 10_000 });
      assert.deepEqual([done.source, done.jobId, done.owner, done.payload], ['w', job.id, 'ann', { ok: true }]);
      await worker.stop();
      const before = (await queue.events.list({ limit: 1000 })).length;
      assert.ok(before >= 4);
      clock.advance(8 * 86_400_000);
      await queue.events.publish({ type: 'fresh' });
      assert.equal(await queue.events.cleanup({ olderThanMs: 7 * 86_400_000 }), before);
      assert.deepEqual(types(await queue.events.list({ limit: 1000 })), ['fresh']);
    });

    it('reaches a subscriber in another process within milliseconds', async () => {
      const { queue, url } = await freshQueue(engine);
      const child = fork(fileURLToPath(new URL('./fixtures/event-subscriber.ts', import.meta.url)), [url], {
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      });
      const lines: string[] = [];
      child.stdout!.on('data', (d) => lines.push(...String(d).split('\n').filter(Boolean)));
      await new Promise((resolve) => child.once('message', resolve));
      const job = await queue.submit({ agent: 'far' });
      await queue.events.publish({ type: 'far.news', target: 'far', payload: 'x' });
      await waitFor(() => lines.length >= 2, { what: 'the other process to print both events' });
      assert.deepEqual(
        lines.slice(0, 2).map((l) => JSON.parse(l).type),
        ['job.created', 'far.news'],
      );
      assert.equal(JSON.parse(lines[0]).jobId, job.id);
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    });
  });
});
