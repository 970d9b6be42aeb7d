/** Workers in this process: the state machine as a handler lives through it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  backoffDelay,
  JobCancelledError,
  JobTimeoutError,
  LeaseLostError,
  ManualClock,
  NonRetryableError,
  Queue,
  ShutdownError,
  ValidationError,
  Worker,
  type Job,
  type WorkerOptions,
} from '../src/index.ts';
import { forEachEngine, freshQueue } from './helpers/engines.ts';
import { deferred, settled, waitFor } from './helpers/wait.ts';
import { finished, startWorker } from './helpers/workers.ts';

forEachEngine((engine) => {
  describe(`worker [${engine.name}]`, () => {
    it('runs a job: running, progress, logs, then completed with its result', async () => {
      const { queue } = await freshQueue(engine);
      const gate = deferred();
      const seen: Job[] = [];
      const worker = await startWorker(queue, {
        echo: async (job, ctx) => {
          seen.push(await queue.get(job.id));
          await ctx.progress(40, 'thinking');
          await ctx.log('info', 'half way', { step: 1 });
          await gate.promise;
          return { echoed: job.payload, attempt: ctx.attempt };
        },
      });
      const job = await queue.submit({ agent: 'echo', payload: 'hi' });
      const mid = await waitFor(async () => {
        const j = await queue.get(job.id);
        return j.progress === 40 ? j : null;
      });
      assert.equal(mid.status, 'running');
      assert.equal(mid.progressMessage, 'thinking');
      assert.equal(mid.workerId, worker.id);
      assert.ok(mid.startedAt && mid.leaseExpiresAt && mid.heartbeatAt);
      gate.resolve();
      const done = await finished(queue, job.id);
      assert.equal(seen[0].status, 'running');
      assert.equal(done.status, 'completed');
      assert.deepEqual(done.result, { echoed: 'hi', attempt: 1 });
      assert.equal(done.progress, 100);
      assert.equal(done.attempts, 1);
      assert.ok(done.durationMs !== null && done.durationMs >= 0);
      const logs = await queue.logs(job.id);
      assert.equal(logs.length, 1);
      assert.deepEqual([logs[0].level, logs[0].message, logs[0].data, logs[0].attempt], ['info', 'half way', { step: 1 }, 1]);
      await worker.stop();
    });

    it('runs jobs by priority, then run-at, then submission order', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const t = clock.now();
      const a = await queue.submit({ agent: 'w', payload: 'low' });
      const b = await queue.submit({ agent: 'w', payload: 'high-late', priority: 5, runAt: t - 1000 });
      const c = await queue.submit({ agent: 'w', payload: 'high-early', priority: 5, runAt: t - 2000 });
      const d = await queue.submit({ agent: 'w', payload: 'high-early-2', priority: 5, runAt: t - 2000 });
      const e = await queue.submit({ agent: 'w', payload: 'negative', priority: -1 });
      const order: string[] = [];
      const worker = await startWorker(queue, { w: (job) => void order.push(job.payload as string) }, { concurrency: 1 });
      await Promise.all([a, b, c, d, e].map((j) => finished(queue, j.id)));
      assert.deepEqual(order, ['high-early', 'high-early-2', 'high-late', 'low', 'negative']);
      await worker.stop();
    });

    it('holds delayed jobs until their time comes', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const ran: string[] = [];
      const worker = await startWorker(queue, { w: (job) => void ran.push(job.id) });
      const later = await queue.submit({ agent: 'w', delayMs: 60_000 });
      const now = await queue.submit({ agent: 'w' });
      await finished(queue, now.id);
      assert.deepEqual(ran, [now.id]);
      assert.equal((await queue.get(later.id)).status, 'pending');
      clock.advance(59_000);
      await queue.submit({ agent: 'other' }); // something happens; still not due
      assert.equal((await queue.get(later.id)).status, 'pending');
      clock.advance(1_000);
      await finished(queue, later.id);
      assert.deepEqual(ran, [now.id, later.id]);
      await worker.stop();
    });

    it('retries with growing backoff until attempts are used up', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const attempts: number[] = [];
      const worker = await startWorker(queue, {
        flaky: (_job, ctx) => {
          attempts.push(ctx.attempt);
          throw new Error(`boom ${ctx.attempt}`);
        },
      });
      const job = await queue.submit({
        agent: 'flaky',
        maxAttempts: 4,
        backoff: { delayMs: 1000, jitter: false },
      });
      const delays: number[] = [];
      for (let attempt = 1; attempt < 4; attempt++) {
        const waiting = await waitFor(async () => {
          const j = await queue.get(job.id);
          return j.status === 'pending' && j.attempts === attempt ? j : null;
        });
        assert.equal(waiting.error?.message, `boom ${attempt}`);
        delays.push(Date.parse(waiting.runAt) - clock.now());
        clock.advance(delays.at(-1)! - 1);
        assert.equal((await queue.get(job.id)).status, 'pending', 'not before its time');
        clock.advance(1);
      }
      const done = await finished(queue, job.id);
      assert.deepEqual(delays, [1000, 2000, 4000]);
      assert.deepEqual(attempts, [1, 2, 3, 4]);
      assert.equal(done.status, 'failed');
      assert.equal(done.attempts, 4);
      assert.equal(done.error?.message, 'boom 4');
      await worker.stop();
    });

    it('spreads backoff with jitter between half and all of the delay', () => {
      const b = { type: 'exponential' as const, delayMs: 1000, maxDelayMs: 10_000, jitter: true };
      assert.equal(backoffDelay(b, 3, () => 0), 2000);
      assert.equal(backoffDelay(b, 3, () => 1), 4000);
      assert.equal(backoffDelay(b, 10, () => 1), 10_000, 'capped');
      assert.equal(backoffDelay({ ...b, type: 'fixed' }, 7, () => 1), 1000);
    });

    it('fails at once on a non-retryable error', async () => {
      const { queue } = await freshQueue(engine);
      const worker = await startWorker(queue, {
        w: () => {
          throw new NonRetryableError('bad request');
        },
      });
      const job = await queue.submit({ agent: 'w', maxAttempts: 5 });
      const done = await finished(queue, job.id);
      assert.equal(done.status, 'failed');
      assert.equal(done.attempts, 1);
      assert.equal(done.error?.message, 'bad request');
      assert.equal(done.error?.name, 'NonRetryableError');
      await worker.stop();
    });

    it('aborts a handler at its timeout, even one that ignores its signal', async () => {
      const { queue } = await freshQueue(engine);
      const reasons: unknown[] = [];
      const worker = await startWorker(queue, {
        polite: (_job, ctx) =>
          new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => {
              reasons.push(ctx.signal.reason);
              reject(ctx.signal.reason);
            }),
          ),
        deaf: () => new Promise(() => {}),
      });
      const polite = await queue.submit({ agent: 'polite', timeoutMs: 30, maxAttempts: 1 });
      const deaf = await queue.submit({ agent: 'deaf', timeoutMs: 30, maxAttempts: 2, backoff: { delayMs: 0 } });
      const a = await finished(queue, polite.id);
      const b = await finished(queue, deaf.id);
      assert.equal(a.status, 'failed');
      assert.equal(a.error?.code, 'timeout');
      assert.ok(reasons[0] instanceof JobTimeoutError);
      assert.equal(b.status, 'failed');
      assert.equal(b.attempts, 2, 'a timeout spends an attempt and is retried');
      await worker.stop();
    });

    it('cancels a running job through its signal and frees the slot', async () => {
      const { queue } = await freshQueue(engine);
      const reasons: unknown[] = [];
      const started = deferred();
      const worker = await startWorker(
        queue,
        {
          w: (job, ctx) =>
            job.payload === 'long'
              ? new Promise((_, reject) => {
                  started.resolve();
                  ctx.signal.addEventListener('abort', () => {
                    reasons.push(ctx.signal.reason);
                    reject(ctx.signal.reason);
                  });
                })
              : 'short done',
        },
        { concurrency: 1 },
      );
      const long = await queue.submit({ agent: 'w', payload: 'long' });
      await started.promise;
      const next = await queue.submit({ agent: 'w', payload: 'short' });
      const cancelled = await queue.cancel(long.id);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal((await finished(queue, next.id)).result, 'short done');
      assert.ok(reasons[0] instanceof JobCancelledError);
      const final = await queue.get(long.id);
      assert.equal(final.status, 'cancelled');
      assert.equal(final.attempts, 1);
      await worker.stop();
    });

    it('hears a cancel made through another connection, as from another process', async () => {
      const { queue, url } = await freshQueue(engine);
      const other = await Queue.open(url);
      const started = deferred();
      const aborted = deferred<unknown>();
      const worker = await startWorker(
        queue,
        {
          w: (_job, ctx) =>
            new Promise((_, reject) => {
              started.resolve();
              ctx.signal.addEventListener('abort', () => {
                aborted.resolve(ctx.signal.reason);
                reject(ctx.signal.reason);
              });
            }),
        },
        { leaseMs: 60_000 },
      );
      const job = await queue.submit({ agent: 'w' });
      await started.promise;
      await other.cancel(job.id);
      assert.ok((await aborted.promise) instanceof JobCancelledError);
      await worker.stop();
      await other.close();
    });

    it('keeps an attempt and its retry apart when both land on the same worker', async () => {
      const { queue, url } = await freshQueue(engine);
      const other = await Queue.open(url);
      const firstStarted = deferred();
      const firstAborted = deferred<unknown>();
      const secondStarted = deferred();
      const secondGate = deferred();
      const attempts: number[] = [];
      const worker = await startWorker(
        queue,
        {
          w: (_job, ctx) => {
            attempts.push(ctx.attempt);
            if (ctx.attempt > 1) {
              secondStarted.resolve();
              return secondGate.promise.then(() => 'second');
            }
            firstStarted.resolve();
            // Ignores its signal: it only notes it, as a slow handler would.
            ctx.signal.addEventListener('abort', () => firstAborted.resolve(ctx.signal.reason));
            return new Promise(() => {});
          },
        },
        { leaseMs: 60_000, concurrency: 2 },
      );
      const job = await queue.submit({ agent: 'w' });
      await firstStarted.promise;
      // Cancel and retry from another connection, back to back, right after
      // another change: the worker may claim the new attempt before it notices
      // that the old one was cancelled.
      await other.submit({ agent: 'elsewhere' });
      await new Promise((r) => setTimeout(r, 0));
      await other.cancel(job.id);
      await other.retry(job.id);
      await settled(secondStarted.promise, 'the second attempt to start');
      assert.ok((await settled(firstAborted.promise, 'the first attempt to be aborted')) instanceof Error);
      await new Promise((r) => setImmediate(r));
      // The end of the first attempt must not take the second one's place with it.
      assert.deepEqual(
        worker.running.map((j) => j.attempts),
        [2],
      );
      secondGate.resolve();
      const done = await finished(queue, job.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.attempts, 2);
      await waitFor(() => worker.running.length === 0, { what: 'the worker to let go of both attempts' });
      assert.deepEqual(attempts, [1, 2]);
      await worker.stop();
      await other.close();
    });

    it('fences a worker that lost its lease: its writes change nothing and its handler is aborted', async () => {
      const { queue, url } = await freshQueue(engine);
      const clockB = new ManualClock(Date.now());
      const rescuer = await Queue.open(url, { clock: clockB });
      const started = deferred();
      const dropped = deferred<unknown>();
      let signalReason: unknown;
      const worker = await startWorker(
        queue,
        {
          w: (_job, ctx) =>
            new Promise((resolve) => {
              started.resolve();
              ctx.signal.addEventListener('abort', () => {
                signalReason = ctx.signal.reason;
                // A stubborn handler that returns a result anyway.
                resolve('late result from A');
              });
            }),
        },
        { leaseMs: 1000, heartbeatIntervalMs: 20, rescueIntervalMs: 60_000 },
      );
      worker.on('job:dropped', (_job, reason) => dropped.resolve(reason));
      const job = await queue.submit({ agent: 'w' });
      await started.promise;
      const lease = { id: job.id, workerId: worker.id, attempt: 1 };

      // Time passes for the rescuer only: A's lease has expired there.
      clockB.advance(60_000);
      assert.deepEqual((await rescuer.rescueExpired()).requeued, [job.id]);
      const [taken] = await rescuer.store.claimJobs({ workerId: 'B', agents: ['w'], limit: 1, leaseMs: 60_000 });
      assert.equal(taken.attempts, 2);

      assert.ok((await dropped.promise) instanceof LeaseLostError);
      assert.ok(signalReason instanceof LeaseLostError);
      assert.deepEqual([...(await queue.store.heartbeat([lease], 1000))], []);
      assert.equal(await queue.store.setProgress(lease, 99, 'stale'), false);
      assert.deepEqual(
        await queue.store.finishJobs([
          { kind: 'complete', lease, result: '"stale"' },
          { kind: 'fail', lease, error: '{"message":"stale"}' },
          { kind: 'retry', lease, error: '{"message":"stale"}', runAt: 0 },
          { kind: 'release', lease },
        ]),
        [false, false, false, false],
      );
      const mid = await queue.get(job.id);
      assert.deepEqual([mid.status, mid.workerId, mid.attempts, mid.progress], ['running', 'B', 2, 0]);
      assert.deepEqual(
        await rescuer.store.finishJobs([{ kind: 'complete', lease: { id: job.id, workerId: 'B', attempt: 2 }, result: '"B"' }]),
        [true],
      );
      const final = await queue.get(job.id);
      assert.deepEqual([final.status, final.result, final.attempts], ['completed', 'B', 2]);
      await worker.stop();
      await rescuer.close();
    });

    it('takes back a job whose lease expired: a new attempt, or failed when attempts are used up', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const again = await queue.submit({ agent: 'w', maxAttempts: 2 });
      const last = await queue.submit({ agent: 'w', maxAttempts: 1 });
      const dependent = await queue.submit({ agent: 'x', dependsOn: [last.id] });
      const claimed = await queue.store.claimJobs({ workerId: 'crashed', agents: ['w'], limit: 5, leaseMs: 1000 });
      assert.equal(claimed.length, 2);
      clock.advance(999);
      assert.deepEqual(await queue.rescueExpired(), { requeued: [], failed: [] });
      clock.advance(2);
      const rescued = await queue.rescueExpired();
      assert.deepEqual(rescued, { requeued: [again.id], failed: [last.id] });
      const a = await queue.get(again.id);
      assert.deepEqual([a.status, a.attempts, a.workerId, a.error?.code], ['pending', 1, null, 'lease_expired']);
      const b = await queue.get(last.id);
      assert.deepEqual([b.status, b.error?.code], ['failed', 'lease_expired']);
      assert.equal((await queue.get(dependent.id)).status, 'cancelled');
    });

    it('shuts down gracefully: short jobs finish, long ones are handed back unspent', async () => {
      const { queue } = await freshQueue(engine);
      const reasons: unknown[] = [];
      const started = new Set<string>();
      const worker = await startWorker(
        queue,
        {
          w: (job, ctx) =>
            new Promise((resolve, reject) => {
              started.add(job.id);
              if (job.payload === 'short') setTimeout(() => resolve('short ok'), 20);
              ctx.signal.addEventListener('abort', () => {
                reasons.push(ctx.signal.reason);
                reject(ctx.signal.reason);
              });
            }),
        },
        { concurrency: 2 },
      );
      const short = await queue.submit({ agent: 'w', payload: 'short' });
      const long = await queue.submit({ agent: 'w', payload: 'long' });
      await waitFor(() => started.size === 2);
      await worker.stop({ graceMs: 200 });
      const s = await queue.get(short.id);
      const l = await queue.get(long.id);
      assert.deepEqual([s.status, s.result], ['completed', 'short ok']);
      assert.deepEqual([l.status, l.attempts, l.workerId], ['pending', 0, null]);
      assert.ok(reasons[0] instanceof ShutdownError);
      assert.deepEqual(await queue.workers(), [], 'a stopped worker leaves the registry');
      const later = await queue.submit({ agent: 'w', payload: 'after stop' });
      assert.equal((await queue.get(later.id)).status, 'pending', 'a stopped worker claims nothing');
    });

    describe('claiming ahead of free slots', () => {
      /**
       * One slot: 40 quick jobs, then one that holds the slot until `gate`
       * opens, then 60 more. Quick jobs make the worker claim ahead, so
       * while the slot is held, two or more of the later jobs are claimed (running,
       * to the database) without having started.
       */
      async function heldAhead(options: Partial<WorkerOptions> = {}) {
        const { queue, url } = await freshQueue(engine);
        const gate = deferred();
        const runs = new Map<string, number>();
        let active = 0;
        let most = 0;
        const handlers = {
          w: async (job: Job) => {
            runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
            most = Math.max(most, ++active);
            try {
              if (job.payload === 'block') await gate.promise;
            } finally {
              active--;
            }
            return null;
          },
        };
        const jobs = await queue.submitMany([
          ...Array.from({ length: 40 }, (_, i) => ({ agent: 'w', payload: i })),
          { agent: 'w', payload: 'block' },
          ...Array.from({ length: 60 }, (_, i) => ({ agent: 'w', payload: `after ${i}` })),
        ]);
        const blocker = jobs[40];
        const worker = await startWorker(queue, handlers, { concurrency: 1, ...options });
        const running = async () => (await queue.list({ status: 'running', limit: 1000 })).jobs;
        const held = await waitFor(
          async () => {
            // Running to the database, never started (not a finished job whose outcome is being written).
            const now = (await running()).filter((j) => !runs.has(j.id));
            return runs.has(blocker.id) && now.length >= 2 ? now : null;
          },
          { what: 'jobs claimed ahead while the slot is held' },
        );
        return { queue, url, gate, runs, jobs, blocker, worker, held, running, most: () => most };
      }

      it('claims quick jobs ahead, and runs no more at once than its concurrency', async () => {
        const { queue, gate, runs, jobs, blocker, worker, held, most } = await heldAhead();
        for (const j of held) {
          assert.equal(j.workerId, worker.id);
          assert.equal(runs.get(j.id), undefined, 'held ahead, not started');
        }
        assert.equal(runs.get(blocker.id), 1);
        gate.resolve();
        await Promise.all(jobs.map((j) => finished(queue, j.id)));
        for (const j of jobs) assert.equal(runs.get(j.id), 1, `job ${j.payload} ran once`);
        assert.equal(most(), 1, 'one slot, one job at a time');
        await worker.stop();
      });

      it('hands back jobs held longer than a quarter of the lease, unspent, for any worker to take', async () => {
        // A 400 ms lease: jobs are held ahead for at most 100 ms.
        const { queue, gate, runs, jobs, blocker, worker, held, running } = await heldAhead({ leaseMs: 400 });
        await waitFor(
          async () => {
            const now = await running();
            return now.length === 1 && now[0].id === blocker.id;
          },
          { what: 'the held jobs to be handed back' },
        );
        const notRun = jobs.filter((j) => !runs.has(j.id));
        for (const h of notRun) {
          const j = await queue.get(h.id);
          assert.deepEqual([j.status, j.attempts, j.workerId], ['pending', 0, null]);
        }
        const released = (await queue.events.list({ pattern: 'job.released', limit: 1000 })).map((e) => e.jobId!);
        assert.equal(new Set(released).size, released.length, 'each held job is handed back once');
        for (const h of held) assert.ok(released.includes(h.id), 'handed back as released');
        for (const id of released) assert.ok(!runs.has(id), 'a released job never ran');
        // With its slot still held, the worker claims none of them again; another worker runs them.
        const other = await startWorker(queue, { w: (job) => void runs.set(job.id, (runs.get(job.id) ?? 0) + 1) });
        await Promise.all(jobs.filter((j) => j.id !== blocker.id).map((j) => finished(queue, j.id)));
        assert.equal((await queue.get(blocker.id)).status, 'running');
        gate.resolve();
        await finished(queue, blocker.id);
        for (const j of jobs) assert.equal(runs.get(j.id), 1, `job ${j.payload} ran once`);
        await Promise.all([worker.stop(), other.stop()]);
      });

      it('a stopping worker hands back the jobs it holds', async () => {
        const { queue, gate, runs, blocker, worker, held } = await heldAhead();
        const stopping = worker.stop({ graceMs: 5000 });
        gate.resolve();
        await stopping;
        assert.equal((await queue.get(blocker.id)).status, 'completed');
        for (const h of held) {
          const j = await queue.get(h.id);
          assert.deepEqual([j.status, j.attempts, j.workerId], ['pending', 0, null]);
          assert.equal(runs.get(j.id), undefined);
        }
        assert.equal((await queue.list({ status: 'running' })).jobs.length, 0);
      });

      it('never starts a held job that is cancelled meanwhile, here or through another connection', async () => {
        const { queue, url, gate, runs, jobs, worker, held } = await heldAhead();
        const dropped = new Map<string, unknown>();
        worker.on('job:dropped', (job, reason) => dropped.set(job.id, reason));
        const victim = held[0];
        await queue.cancel(victim.id);
        assert.ok(dropped.get(victim.id) instanceof JobCancelledError);
        // As from another process: the worker hears of it through the database.
        const other = await Queue.open(url);
        await other.cancel(held[1].id);
        await waitFor(() => dropped.has(held[1].id), { what: 'the held job cancelled elsewhere to be dropped' });
        assert.ok(dropped.get(held[1].id) instanceof JobCancelledError);
        await other.close();
        gate.resolve();
        await Promise.all(jobs.map((j) => finished(queue, j.id)));
        for (const j of held.slice(0, 2)) {
          assert.equal((await queue.get(j.id)).status, 'cancelled');
          assert.equal(runs.get(j.id), undefined, 'a cancelled job never ran');
        }
        await worker.stop();
      });

      it('takes prefetch 0 to claim only for free slots, and refuses a bad value', async () => {
        const { queue } = await freshQueue(engine);
        assert.throws(
          () => new Worker(queue, { handlers: { w: () => null }, prefetch: -1 }),
          (e: unknown) => e instanceof ValidationError && e.field === 'prefetch',
        );
        assert.throws(
          () => new Worker(queue, { handlers: { w: () => null }, prefetch: 1.5 }),
          (e: unknown) => e instanceof ValidationError && e.field === 'prefetch',
        );
        const seen: number[] = [];
        const started = new Set<string>();
        const gate = deferred();
        const jobs = await queue.submitMany(Array.from({ length: 30 }, (_, i) => ({ agent: 'w', payload: i })));
        const worker = await startWorker(
          queue,
          {
            w: async (job, ctx) => {
              // Nothing is claimed beyond the one slot: every running job has started (the one before
              // may still be writing its outcome).
              started.add(job.id);
              const running = (await queue.list({ status: 'running' })).jobs;
              seen.push(running.filter((j) => !started.has(j.id)).length);
              if (job.payload === 20) await gate.promise;
              return ctx.attempt;
            },
          },
          { concurrency: 1, prefetch: 0 },
        );
        await waitFor(() => seen.length === 21);
        gate.resolve();
        await Promise.all(jobs.map((j) => finished(queue, j.id)));
        assert.deepEqual(new Set(seen), new Set([0]));
        await worker.stop();
      });
    });

    it('holds a global per-agent concurrency cap across workers', async () => {
      const { queue, url } = await freshQueue(engine);
      const other = await Queue.open(url);
      await queue.setAgentConcurrency('capped', 2);
      const gate = deferred();
      let now = 0;
      let peak = 0;
      const handler = async () => {
        peak = Math.max(peak, ++now);
        await gate.promise;
        now--;
      };
      const workers = [
        await startWorker(queue, { capped: handler }, { concurrency: 5 }),
        await startWorker(other, { capped: handler }, { concurrency: 5 }),
      ];
      const jobs = await queue.submitMany(Array.from({ length: 8 }, () => ({ agent: 'capped' })));
      await waitFor(async () => (await queue.stats()).byStatus.running === 2);
      // Give every worker a reason to claim again: none may go over the cap.
      await queue.submit({ agent: 'capped' });
      await other.submit({ agent: 'capped' });
      assert.equal((await queue.stats()).byStatus.running, 2);
      gate.resolve();
      await Promise.all(jobs.map((j) => finished(queue, j.id)));
      assert.equal(peak, 2);
      assert.deepEqual(await queue.store.agentConcurrency(), { capped: 2 });
      for (const w of workers) await w.stop();
      await other.close();
    });

    it('lists live workers with what they serve and run, and finds hung jobs', async () => {
      const clock = new ManualClock(Date.now());
      const { queue } = await freshQueue(engine, { clock });
      const gate = deferred();
      const worker = await startWorker(queue, { a: () => gate.promise, b: () => null }, { concurrency: 3, name: 'box-1' });
      const job = await queue.submit({ agent: 'a' });
      await waitFor(async () => (await queue.get(job.id)).status === 'running');
      const [info] = await queue.workers();
      assert.equal(info.id, worker.id);
      assert.equal(info.name, 'box-1');
      assert.deepEqual(info.agents, ['a', 'b']);
      assert.equal(info.concurrency, 3);
      assert.deepEqual(info.running, [job.id]);

      const stale = await queue.submit({ agent: 'c' });
      await queue.store.claimJobs({ workerId: 'silent', agents: ['c'], limit: 1, leaseMs: 3_600_000 });
      clock.advance(6 * 60_000);
      await waitFor(async () => (await queue.hung()).length === 1, { what: 'the silent job to be hung' });
      assert.deepEqual(
        (await queue.hung()).map((j) => j.id),
        [stale.id],
        'the live worker heartbeats, the silent one does not',
      );
      assert.deepEqual(await queue.hung({ timeoutMs: 10 * 60_000 }), []);
      gate.resolve();
      await worker.stop();
    });

    it('spawns children, picks handlers per type, and unblocks dependents on completion', async () => {
      const { queue } = await freshQueue(engine);
      // The dependency does not finish before its dependent is submitted, however fast the worker.
      const dependentSubmitted = deferred();
      const worker = await startWorker(queue, {
        lead: async (job, ctx) => {
          const child = await ctx.spawn({ agent: 'helper', type: 'summary', payload: 'part' });
          return { child: child.id };
        },
        helper: {
          summary: () => 'summarized',
          '*': async (job) => {
            await dependentSubmitted.promise;
            return `other ${job.type}`;
          },
        },
      });
      const lead = await queue.submit({ agent: 'lead', owner: 'ann' });
      const done = await finished(queue, lead.id);
      const childId = (done.result as { child: string }).child;
      const child = await finished(queue, childId);
      assert.deepEqual([child.parentId, child.owner, child.result], [lead.id, 'ann', 'summarized']);
      assert.deepEqual(
        (await queue.list({ parentId: lead.id })).jobs.map((j) => j.id),
        [childId],
      );
      const first = await queue.submit({ agent: 'helper', type: 'draft' });
      const then = await queue.submit({ agent: 'helper', type: 'summary', dependsOn: [first.id] });
      assert.equal(then.status, 'blocked');
      dependentSubmitted.resolve();
      assert.equal((await finished(queue, then.id)).status, 'completed');
      assert.equal((await queue.get(first.id)).result, 'other draft');
      await worker.stop();
    });
  });
});
