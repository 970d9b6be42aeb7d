/** Rate limits, retry-after, usage accounting and budgets, on both engines. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ManualClock, Queue, ValidationError } from '../src/index.ts';
import { forEachEngine, freshQueue, tempDir } from './helpers/engines.ts';
import { readLedger, startWorkerProcess } from './helpers/processes.ts';
import { waitFor } from './helpers/wait.ts';
import { finished, startWorker } from './helpers/workers.ts';

forEachEngine((engine) => {
  describe(`rate limits and budgets [${engine.name}]`, () => {
    it('lets starts through while a window has room, and says when the next one may start', async () => {
      const clock = new ManualClock(Date.parse('2026-12-01T10:00:00Z'));
      const { queue } = await freshQueue(engine, { clock });
      const store = queue.store;
      const t0 = clock.now();
      // 3 a minute: buckets of 3 s; a bucket counts until all of it has left the window.
      await store.setRateLimit('a', { max: 3, perMs: 60_000 });
      await store.setRateLimit('b', { max: 1, perMs: 60_000 });
      assert.deepEqual(await store.takeRateSlots([['a'], ['a', 'free'], ['free']]), [{ ok: true }, { ok: true }, { ok: true }]);
      clock.advance(10_000);
      const bucket = (at: number) => Math.floor(at / 3000) * 3000;
      // A job needing a full key takes nothing of the others it needs.
      assert.deepEqual(await store.takeRateSlots([['a', 'b'], ['b'], ['a']]), [
        { ok: true },
        { ok: false, key: 'b', retryAt: bucket(clock.now()) + 3000 + 60_000 + 1 },
        { ok: false, key: 'a', retryAt: bucket(t0) + 3000 + 60_000 + 1 },
      ]);
      clock.set(bucket(t0) + 3000 + 60_000 + 1);
      assert.deepEqual(await store.takeRateSlots([['a'], ['a'], ['a']]), [
        { ok: true },
        { ok: true },
        { ok: false, key: 'a', retryAt: bucket(t0 + 10_000) + 3000 + 60_000 + 1 },
      ]);
      // A paused key holds everything that needs it until the pause ends, limited or not.
      await store.pauseRateKeys(['b', 'other'], clock.now() + 5000);
      assert.deepEqual(await store.takeRateSlots([['other'], ['b']]), [
        { ok: false, key: 'other', retryAt: clock.now() + 5000 },
        { ok: false, key: 'b', retryAt: clock.now() + 5000 },
      ]);
      clock.advance(5001);
      assert.deepEqual(await store.takeRateSlots([['other']]), [{ ok: true }]);
    });

    it('never runs more than its concurrency while jobs over a limit are put back', async () => {
      const { queue } = await freshQueue(engine);
      await queue.limits.setRateLimit('agent:x', { max: 1, per: '1h' });
      let running = 0;
      let most = 0;
      let done = 0;
      const busy = async () => {
        most = Math.max(most, ++running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        done++;
      };
      const worker = await startWorker(queue, { x: busy, y: busy }, { concurrency: 2 });
      // Rounds of jobs over the limit mixed with free ones: each deferral is written while free jobs wait.
      for (let round = 0; round < 10; round++) {
        await queue.submitMany([...Array.from({ length: 4 }, () => ({ agent: 'x' })), ...Array.from({ length: 4 }, () => ({ agent: 'y' }))]);
      }
      await waitFor(() => done >= 41, { what: 'the free jobs and the one x within the limit' });
      assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
      await worker.stop();
    });

    it('holds 5 starts per second across two worker processes over 50 jobs, spending no attempts', async () => {
      const { queue, url } = await freshQueue(engine);
      await queue.limits.setRateLimit('agent:limited', { max: 5, per: '1s' });
      const ledger = join(tempDir(), 'ledger');
      // Two slots each and 600 ms a job: one process alone starts at most about 3.3 a second,
      // so reaching the limit takes both of them.
      const base = { db: url, ledger, agent: 'limited', mode: 'stamp', concurrency: 2, pollIntervalMs: 50 };
      const workers = [startWorkerProcess(base), startWorkerProcess(base)];
      await Promise.all(workers.map((w) => w.ready));
      const jobs = await queue.submitMany(Array.from({ length: 50 }, () => ({ agent: 'limited', payload: { ms: 600 } })));
      await waitFor(async () => (await queue.stats()).byStatus.completed === 50, { timeoutMs: 60_000, what: 'all 50 jobs' });
      const starts = readLedger(ledger)
        .filter((l) => l.event.startsWith('start@'))
        .map((l) => Number(l.event.slice('start@'.length)))
        .sort((a, b) => a - b);
      assert.equal(starts.length, 50, 'each job started once');
      // In any window shorter than a second (less a margin for the time between letting a
      // start through and stamping it), at most 5 starts.
      for (let i = 0; i < starts.length; i++) {
        const inWindow = starts.filter((t) => t >= starts[i] && t < starts[i] + 850).length;
        assert.ok(inWindow <= 5, `${inWindow} starts within 850 ms from ${starts[i] - starts[0]} ms`);
      }
      assert.ok(starts.at(-1)! - starts[0] >= 8_000, 'fifty starts at five a second take nine seconds or so');
      const pids = new Set(readLedger(ledger).filter((l) => l.event.startsWith('start@')).map((l) => l.pid));
      assert.equal(pids.size, 2, 'both processes ran jobs');
      for (const job of jobs) assert.equal((await queue.get(job.id)).attempts, 1, 'waiting for the limit spent no attempt');
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
    });

    it('puts a job back on retry-after without spending an attempt, and pauses its key for everyone meanwhile', async () => {
      const clock = new ManualClock(Date.parse('2026-12-01T10:00:00Z'));
      const { queue } = await freshQueue(engine, { clock });
      const runs: string[] = [];
      let told = false;
      const worker = await startWorker(queue, {
        llm: async (job, ctx) => {
          runs.push(String(job.payload));
          if (job.payload === 'first' && !told) {
            told = true;
            return ctx.retryAfter(30_000);
          }
          return 'ok';
        },
      });
      const first = await queue.submit({ agent: 'llm', payload: 'first', rateKey: 'openai:gpt-5', maxAttempts: 1 });
      await waitFor(async () => (await queue.get(first.id)).status === 'pending' && told, { what: 'the job to be put back' });
      const back = await queue.get(first.id);
      assert.equal(back.attempts, 0, 'the attempt was given back');
      assert.equal(Date.parse(back.runAt), clock.now() + 30_000);
      const paused = (await queue.limits.rateLimits()).find((l) => l.key === 'openai:gpt-5');
      assert.equal(paused?.pausedUntil, new Date(clock.now() + 30_000).toISOString());
      // Another job on the same key waits out the pause too, without spending an attempt.
      const second = await queue.submit({ agent: 'other', payload: 'second', rateKey: 'openai:gpt-5' });
      const otherWorker = await startWorker(queue, { other: (job) => void runs.push(String(job.payload)) });
      await waitFor(async () => Date.parse((await queue.get(second.id)).runAt) >= clock.now() + 29_000, { what: 'the second job to be held back' });
      assert.deepEqual(runs, ['first']);
      clock.advance(30_001);
      assert.equal((await finished(queue, first.id)).status, 'completed');
      assert.equal((await finished(queue, second.id)).status, 'completed');
      assert.deepEqual([(await queue.get(first.id)).attempts, (await queue.get(second.id)).attempts], [1, 1]);
      assert.deepEqual(runs.sort(), ['first', 'first', 'second']);
      await otherWorker.stop();
      await worker.stop();
    });

    it('sums usage per job, per tree, per agent and per owner', async () => {
      const { queue } = await freshQueue(engine);
      const worker = await startWorker(queue, {
        lead: async (job, ctx) => {
          await ctx.usage({ model: 'gpt-5', inputTokens: 100, outputTokens: 20, costUsd: 0.01 });
          const kids = await ctx.children();
          if (kids.length === 0) {
            for (const n of [1, 2]) await ctx.spawn({ agent: 'helper', payload: n });
            return ctx.waitForChildren();
          }
          return 'done';
        },
        helper: async (job, ctx) => {
          await ctx.usage({ model: 'gpt-5-mini', inputTokens: 10 * Number(job.payload), outputTokens: 5, costUsd: 0.002 });
        },
      });
      const lead = await queue.submit({ agent: 'lead', owner: 'alice' });
      assert.equal((await finished(queue, lead.id)).status, 'completed');
      const usage = await queue.limits.usage(lead.id);
      // The lead ran twice (before and after its children): two calls of its own.
      assert.deepEqual(usage.job, { calls: 2, inputTokens: 200, outputTokens: 40, costUsd: 0.02, tokens: 240 });
      assert.deepEqual(usage.tree, { calls: 4, inputTokens: 230, outputTokens: 50, costUsd: 0.024, tokens: 280 });
      const byAgent = Object.fromEntries((await queue.limits.usageBy('agent')).map((r) => [r.name, r.tokens]));
      assert.deepEqual(byAgent, { helper: 40, lead: 240 });
      const byOwner = await queue.limits.usageBy('owner');
      assert.deepEqual(byOwner.map((r) => [r.name, r.calls]), [['alice', 4]]);
      await assert.rejects(queue.submit({ agent: 'x', budget: { tokens: -1 } }), ValidationError);
      await worker.stop();
    });

    it('aborts a child that takes its tree over the budget it shares, and its parent sees why', async () => {
      const { queue } = await freshQueue(engine);
      let remainingAtStart: unknown;
      let aborted = false;
      const worker = await startWorker(queue, {
        lead: async (job, ctx) => {
          const kids = await ctx.children();
          if (kids.length === 0) {
            await ctx.usage({ inputTokens: 30 });
            await ctx.spawn({ agent: 'spender' });
            return ctx.waitForChildren();
          }
          return { child: kids[0].status, code: kids[0].error?.code, message: kids[0].error?.message };
        },
        spender: async (job, ctx) => {
          remainingAtStart = await ctx.remainingBudget();
          ctx.signal.addEventListener('abort', () => (aborted = true));
          await ctx.usage({ inputTokens: 50 });
          await ctx.usage({ inputTokens: 50 });
          await new Promise((resolve) => setTimeout(resolve, 10_000));
          return 'should not get here';
        },
      });
      const lead = await queue.submit({ agent: 'lead', budget: { tokens: 100 } });
      const done = await finished(queue, lead.id);
      assert.deepEqual(remainingAtStart, { tokens: 70, costUsd: null }, 'the child starts with what its parent left');
      assert.equal(aborted, true, 'the child was aborted through its signal');
      assert.equal(done.status, 'completed');
      const seen = done.result as { child: string; code: string; message: string };
      assert.deepEqual([seen.child, seen.code], ['failed', 'budget_exceeded']);
      assert.match(seen.message, new RegExp(`budget of job ${lead.id}`));
      assert.equal((await queue.limits.usage(lead.id)).tree.tokens, 130, 'what was spent is recorded');
      await worker.stop();
    });
  });
});
