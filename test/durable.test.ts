/** Durable steps, waits for events and approval gates, on both engines. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConflictError, LeaseLostError, ManualClock, NotFoundError, PayloadTooLargeError, Queue, type Job } from '../src/index.ts';
import { forEachEngine, freshQueue, tempDir } from './helpers/engines.ts';
import { readLedger, startWorkerProcess } from './helpers/processes.ts';
import { deferred, waitFor } from './helpers/wait.ts';
import { startWorker } from './helpers/workers.ts';

async function status(queue: Queue, id: string, want: Job['status'] | Job['status'][]): Promise<Job> {
  const wanted = typeof want === 'string' ? [want] : want;
  return waitFor(
    async () => {
      const job = await queue.get(id);
      return wanted.includes(job.status) ? job : null;
    },
    { what: `job ${id} to be ${wanted.join(' or ')}` },
  );
}

forEachEngine((engine) => {
  describe(`durable steps and approvals [${engine.name}]`, () => {
    it('runs only the unfinished steps after its worker process was killed, keeping the results of all three', async () => {
      const { queue, url } = await freshQueue(engine);
      const ledger = join(tempDir(), 'ledger');
      const base = { db: url, ledger, agent: 'steps', mode: 'steps', leaseMs: 1000, rescueIntervalMs: 100, pollIntervalMs: 50 };
      const first = startWorkerProcess(base);
      await first.ready;
      const job = await queue.submit({ agent: 'steps' });
      await waitFor(() => readLedger(ledger).some((l) => l.event === 'after2'), { what: 'step two to finish' });
      first.child.kill('SIGKILL');
      await first.exited;
      const second = startWorkerProcess(base);
      await second.ready;
      const done = await status(queue, job.id, 'completed');
      assert.equal(done.attempts, 2);
      const result = done.result as Record<string, { ranBy: number; attempt: number }>;
      assert.deepEqual(
        [result.one, result.two, result.three],
        [
          { ranBy: first.child.pid, attempt: 1 },
          { ranBy: first.child.pid, attempt: 1 },
          { ranBy: second.child.pid, attempt: 2 },
        ],
      );
      assert.deepEqual(
        readLedger(ledger).map((l) => [l.event, l.attempt]),
        [
          ['step1', 1],
          ['step2', 1],
          ['after2', 1],
          ['step3', 2],
        ],
        'steps one and two ran once',
      );
      second.child.kill('SIGTERM');
      await second.exited;
    });

    it('keeps checkpointed state across attempts and refuses a step result over the size limit', async () => {
      const { queue } = await freshQueue(engine, { maxPayloadBytes: 10_000 });
      const seen: unknown[] = [];
      const worker = await startWorker(queue, {
        chat: async (job, ctx) => {
          const state = ((await ctx.state()) as { turns: number } | undefined) ?? { turns: 0 };
          seen.push(state.turns);
          await ctx.checkpoint({ turns: state.turns + 1 });
          if (ctx.attempt < 3) throw new Error('flaky');
          return state.turns + 1;
        },
        big: (job, ctx) => ctx.step('huge', () => 'x'.repeat(20_000)),
      });
      const chat = await queue.submit({ agent: 'chat', backoff: { delayMs: 0, jitter: false } });
      assert.equal((await status(queue, chat.id, 'completed')).result, 3);
      assert.deepEqual(seen, [0, 1, 2]);
      const big = await queue.submit({ agent: 'big', maxAttempts: 1 });
      const failed = await status(queue, big.id, 'failed');
      assert.match(failed.error!.message, /step huge: \d+ bytes is over the limit of 10000 bytes/);
      assert.equal(failed.error!.name, new PayloadTooLargeError('x', 1, 0).name);
      await worker.stop();
    });

    it('suspends on waitForEvent holding no slot, resumes on a matching event, and fails at the timeout', async () => {
      const clock = new ManualClock(Date.parse('2026-12-01T10:00:00Z'));
      const { queue } = await freshQueue(engine, { clock });
      const runs: string[] = [];
      const worker = await startWorker(
        queue,
        {
          order: async (job, ctx) => {
            const placed = await ctx.step('place', () => {
              runs.push('place');
              return { order: (job.payload as { order: number }).order };
            });
            const paid = await ctx.waitForEvent('payment.*', { match: { order: placed.order }, timeout: '1h' });
            runs.push('after wait');
            return { order: placed.order, paidBy: (paid.payload as { by: string }).by, type: paid.type };
          },
          quick: () => 'ok',
        },
        { concurrency: 1 },
      );
      const waiting = await queue.submit({ agent: 'order', payload: { order: 7 } });
      const parked = await status(queue, waiting.id, 'waiting');
      assert.equal(parked.waitingFor?.kind, 'event');
      assert.equal(parked.workerId, null);
      // With one slot, other jobs run while it waits.
      const others = await Promise.all([1, 2, 3].map(() => queue.submit({ agent: 'quick' })));
      for (const o of others) await status(queue, o.id, 'completed');
      // A non-matching event changes nothing; the matching one resumes it.
      // More non-matching events of the pattern than one read takes: the wait reads past them.
      for (let i = 0; i < 1100; i++) await queue.events.publish({ type: 'payment.received', payload: { order: 8, by: 'someone else' } });
      await queue.events.publish({ type: 'shipping.sent', payload: { order: 7 } });
      assert.equal((await queue.get(waiting.id)).status, 'waiting');
      await queue.events.publish({ type: 'payment.received', payload: { order: 7, by: 'card' } });
      const done = await status(queue, waiting.id, 'completed');
      assert.deepEqual(done.result, { order: 7, paidBy: 'card', type: 'payment.received' });
      assert.deepEqual(runs, ['place', 'after wait'], 'the step before the wait ran once');
      assert.equal(done.attempts, 1, 'waiting spent no attempt');
      const types = (await queue.events.list({ pattern: 'job.*', limit: 100 })).filter((e) => e.jobId === waiting.id).map((e) => e.type);
      assert.deepEqual(types.slice(1), ['job.started', 'job.waiting', 'job.resumed', 'job.started', 'job.completed']);

      // A wait that times out fails the job, with no retry.
      const late = await queue.submit({ agent: 'order', payload: { order: 9 } });
      await status(queue, late.id, 'waiting');
      clock.advance(3_600_001);
      const failed = await status(queue, late.id, 'failed');
      assert.equal(failed.error!.code, 'wait_timeout');
      await worker.stop();
    });

    it('a wait reads past a whole page of events that only look like its pattern to the database', async () => {
      const { queue } = await freshQueue(engine);
      const worker = await startWorker(queue, { pay: async (job, ctx) => (await ctx.waitForEvent('payment.received')).payload });
      const job = await queue.submit({ agent: 'pay' });
      await status(queue, job.id, 'waiting');
      // One transaction, so one look sees them all: 600 events whose type differs only in case
      // (SQLite's LIKE lets them through, the exact match does not), then the one it waits for.
      const lookalike = { type: 'PAYMENT.RECEIVED', source: 'test', target: null, jobId: null, owner: null, payload: '"no"' };
      await queue.store.appendEvents([...Array.from({ length: 600 }, () => lookalike), { ...lookalike, type: 'payment.received', payload: '"yes"' }]);
      assert.equal((await status(queue, job.id, 'completed')).result, 'yes');
      await worker.stop();
    });

    it('gates a job on an approval: approve resumes it with who and why; reject and expiry fail it; each decided once', async () => {
      const clock = new ManualClock(Date.parse('2026-12-01T10:00:00Z'));
      const { queue } = await freshQueue(engine, { clock });
      const acted: string[] = [];
      const worker = await startWorker(queue, {
        deploy: async (job, ctx) => {
          const plan = await ctx.step('plan', () => ({ target: String(job.payload) }));
          const ok = await ctx.approval({ title: `Deploy to ${plan.target}?`, details: plan, assignee: 'ops', expiresIn: '2h' });
          acted.push(plan.target);
          return { deployed: plan.target, approvedBy: ok.by, comment: ok.comment };
        },
      });
      const a = await queue.submit({ agent: 'deploy', payload: 'prod', owner: 'alice' });
      const b = await queue.submit({ agent: 'deploy', payload: 'staging', owner: 'alice' });
      const c = await queue.submit({ agent: 'deploy', payload: 'dev', owner: 'bob' });
      for (const j of [a, b, c]) await status(queue, j.id, 'waiting');
      const pending = await queue.approvals.list({ status: 'pending' });
      assert.equal(pending.length, 3);
      const of = (job: Job) => pending.find((p) => p.jobId === job.id)!;
      assert.deepEqual([of(a).title, of(a).assignee, of(a).owner, of(a).details], ['Deploy to prod?', 'ops', 'alice', { target: 'prod' }]);
      assert.equal((await queue.approvals.list({ owner: 'bob' })).length, 1);
      // Visible to a user: of their jobs, or assigned to them, filtered in the database (so a limit counts only theirs).
      assert.deepEqual((await queue.approvals.list({ visibleTo: 'bob', limit: 1 })).map((p) => p.jobId), [c.id]);
      assert.equal((await queue.approvals.list({ visibleTo: 'ops' })).length, 3, 'the assignee sees all three');
      assert.equal((await queue.approvals.list({ visibleTo: 'carol' })).length, 0);
      // By prefix: the shortest prefix that tells one apart from the others.
      const ids = pending.map((p) => p.id);
      let n = 1;
      while (ids.some((id) => id !== of(c).id && id.startsWith(of(c).id.slice(0, n)))) n++;
      assert.equal((await queue.approvals.get(of(c).id.slice(0, n).toLowerCase())).id, of(c).id);
      if (n > 1) {
        await assert.rejects(queue.approvals.get(of(c).id.slice(0, n - 1)), (e: Error & { code?: string }) => e.code === 'ambiguous_id');
      }

      const approved = await queue.approvals.approve(of(a).id.toLowerCase(), { by: 'carol', comment: 'go ahead' });
      assert.deepEqual([approved.status, approved.decidedBy, approved.comment], ['approved', 'carol', 'go ahead']);
      assert.ok(approved.decidedAt);
      const done = await status(queue, a.id, 'completed');
      assert.deepEqual(done.result, { deployed: 'prod', approvedBy: 'carol', comment: 'go ahead' });
      await assert.rejects(queue.approvals.reject(of(a).id), ConflictError);

      await queue.approvals.reject(of(b).id, { by: 'dave', comment: 'not today' });
      const rejected = await status(queue, b.id, 'failed');
      assert.equal(rejected.error!.code, 'approval_rejected');
      assert.match(rejected.error!.message, /rejected by dave: not today/);

      clock.advance(2 * 3_600_000 + 1);
      const expired = await status(queue, c.id, 'failed');
      assert.equal(expired.error!.code, 'approval_expired');
      assert.equal((await queue.approvals.get(of(c).id)).status, 'expired');
      assert.deepEqual(acted, ['prod'], 'only the approved job acted');
      await assert.rejects(queue.approvals.get('01NOPE'), NotFoundError);
      await worker.stop();
    });

    it('drops a job whose step finds its lease gone: the step is not kept and the handler is aborted', async () => {
      const { queue } = await freshQueue(engine);
      const first = deferred();
      const go = deferred();
      let aborted: unknown;
      const worker = await startWorker(queue, {
        w: async (_job, ctx) => {
          ctx.signal.addEventListener('abort', () => (aborted = ctx.signal.reason));
          await ctx.step('one', () => 1);
          first.resolve();
          await go.promise;
          await ctx.step('two', () => 2);
          return 'never';
        },
      });
      const dropped = deferred<unknown>();
      worker.on('job:dropped', (_job, reason) => dropped.resolve(reason));
      const job = await queue.submit({ agent: 'w' });
      await first.promise;
      // Taken back meanwhile, as after a lost lease: due again in an hour.
      const lease = { id: job.id, workerId: worker.id, attempt: 1 };
      const later = queue.store.now() + 3_600_000;
      assert.deepEqual(await queue.store.finishJobs([{ kind: 'retry', lease, error: '{"message":"taken"}', runAt: later }]), [true]);
      go.resolve();
      assert.ok((await dropped.promise) instanceof LeaseLostError);
      assert.ok(aborted instanceof LeaseLostError);
      assert.deepEqual([...(await queue.store.getSteps(job.id)).keys()], ['one']);
      assert.equal((await queue.get(job.id)).status, 'pending');
      await worker.stop();
    });

    it('starts a retried job afresh when it was cancelled while waiting for an event', async () => {
      const { queue } = await freshQueue(engine);
      let runs = 0;
      const worker = await startWorker(queue, {
        w: async (_job, ctx) => {
          if (++runs === 1) await ctx.waitForEvent('never.comes');
          return runs;
        },
      });
      const job = await queue.submit({ agent: 'w' });
      const waiting = await status(queue, job.id, 'waiting');
      assert.ok(waiting.waitingFor, 'it says what it waits for');
      assert.equal((await queue.cancel(job.id)).status, 'cancelled');
      const retried = await queue.retry(job.id);
      assert.equal(retried.waitingFor, null, 'the old wait is gone');
      assert.equal((await status(queue, job.id, 'completed')).result, 2);
      await worker.stop();
    });

    it('does not resume a job that waits for an event when its children finish', async () => {
      const { queue } = await freshQueue(engine);
      const gate = deferred();
      const worker = await startWorker(queue, {
        parent: async (job, ctx) => {
          await ctx.step('spawn', async () => (await ctx.spawn({ agent: 'child' })).id);
          const e = await ctx.waitForEvent('go.now');
          return e.type;
        },
        child: async () => {
          await gate.promise;
          return 'done';
        },
      });
      const parent = await queue.submit({ agent: 'parent' });
      await status(queue, parent.id, 'waiting');
      gate.resolve();
      const [child] = (await queue.list({ parentId: parent.id })).jobs;
      await status(queue, child.id, 'completed');
      assert.equal((await queue.get(parent.id)).status, 'waiting', 'still waiting for its event');
      await queue.events.publish({ type: 'go.now' });
      assert.equal((await status(queue, parent.id, 'completed')).result, 'go.now');
      await worker.stop();
    });
  });
});
