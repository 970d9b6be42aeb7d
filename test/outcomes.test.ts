/**
 * A worker's steady state on both engines: the outcomes of its last batch and
 * the claim of the next, in one call where the engine offers it
 * (`finishAndClaimJobs`, SQLite) or as the worker does otherwise, outcomes
 * then claim: every kind of outcome, jobs that others depend on, stale
 * leases, caps, types, and a claim with no room.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../src/index.ts';
import type { ClaimParams, Lease, Outcome, Store } from '../src/store/store.ts';
import { forEachEngine, freshQueue } from './helpers/engines.ts';
import { waitFor } from './helpers/wait.ts';
import { finished, startWorker } from './helpers/workers.ts';

const lease = (job: Job, workerId = 'w1'): Lease => ({ id: job.id, workerId, attempt: job.attempts });

/** What the worker does after a batch, on this engine. */
async function finishAndClaim(store: Store, outcomes: Outcome[], params: ClaimParams): Promise<{ took: boolean[]; jobs: Job[] }> {
  if (store.finishAndClaimJobs) return store.finishAndClaimJobs(outcomes, params);
  const took = await store.finishJobs(outcomes);
  return { took, jobs: await store.claimJobs(params) };
}

async function claimAll(store: Store, agent: string, limit: number, workerId = 'w1'): Promise<Job[]> {
  return store.claimJobs({ workerId, agents: [agent], limit, leaseMs: 30_000 });
}

forEachEngine((engine) => {
  describe(`outcomes and the next claim [${engine.name}]`, () => {
    it('records completions, failures and retries, unblocks dependents, and claims in one call', async () => {
      const { queue } = await freshQueue(engine);
      const store = queue.store;
      const [a, b, d] = await queue.submitGraph([
        { ref: 'a', agent: 'x', payload: 'a' },
        { ref: 'b', agent: 'x', payload: 'b' },
        { ref: 'd', agent: 'x', payload: 'd', dependsOn: ['b'] },
      ]);
      const e = await queue.submit({ agent: 'x', payload: 'e' });
      const f = await queue.submit({ agent: 'x', payload: 'f', maxAttempts: 3 });
      const g = await queue.submit({ agent: 'x', payload: 'g' });
      const running = await claimAll(store, 'x', 10);
      assert.deepEqual(new Set(running.map((j) => j.id)), new Set([a.id, b.id, e.id, f.id, g.id]));
      const byId = new Map(running.map((j) => [j.id, j]));
      // The next work, ahead of anything the outcomes make due.
      const next = await queue.submitMany([
        { agent: 'x', payload: 'n1', priority: 10 },
        { agent: 'x', payload: 'n2', priority: 10 },
      ]);
      const later = store.now() + 60_000;
      const outcomes: Outcome[] = [
        { kind: 'complete', lease: lease(byId.get(a.id)!), result: '"A"' },
        { kind: 'complete', lease: lease(byId.get(b.id)!), result: '"B"' },
        { kind: 'fail', lease: lease(byId.get(e.id)!), error: '{"message":"E"}' },
        { kind: 'retry', lease: lease(byId.get(f.id)!), error: '{"message":"F"}', runAt: later },
        // A lease this worker no longer holds: nothing is written for it.
        { kind: 'complete', lease: { ...lease(byId.get(g.id)!), attempt: 99 }, result: '"G"' },
      ];
      const done = await finishAndClaim(store, outcomes, { workerId: 'w1', agents: ['x'], limit: 2, leaseMs: 30_000 });
      assert.deepEqual(done.took, [true, true, true, true, false]);
      assert.deepEqual(
        done.jobs.map((j) => j.id),
        next.map((j) => j.id),
        'the claim takes the highest priority first',
      );
      assert.ok(done.jobs.every((j) => j.status === 'running' && j.workerId === 'w1' && j.attempts === 1));

      const now = await Promise.all([a, b, d, e, f, g].map((j) => store.getJob(j.id)));
      assert.deepEqual(
        now.map((j) => j?.status),
        ['completed', 'completed', 'pending', 'failed', 'pending', 'running'],
      );
      assert.deepEqual(now[0]!.result, 'A');
      assert.equal(now[0]!.progress, 100);
      assert.ok(now[0]!.finishedAt != null);
      assert.deepEqual(now[3]!.error, { message: 'E' });
      assert.ok(now[3]!.finishedAt != null);
      assert.equal(now[4]!.runAt, new Date(later).toISOString(), 'a retry waits for its backoff');
      assert.equal(now[4]!.workerId, null);
      assert.equal(now[4]!.finishedAt, null);
      assert.deepEqual(now[4]!.error, { message: 'F' });
      assert.equal(now[5]!.workerId, 'w1', 'the job of the stale lease is left as it was');

      // Every change is an event, once.
      const expected = [
        `job.completed ${a.id}`,
        `job.completed ${b.id}`,
        `job.unblocked ${d.id}`,
        `job.failed ${e.id}`,
        `job.retrying ${f.id}`,
        `job.started ${next[0].id}`,
        `job.started ${next[1].id}`,
      ].sort();
      const ids = new Set([a.id, b.id, d.id, e.id, f.id, g.id, ...next.map((j) => j.id)]);
      const seen = async () => {
        const events = await store.listEvents({ after: 0, limit: 1000 });
        return events
          .filter((ev) => ev.type !== 'job.created' && ev.jobId != null && ids.has(ev.jobId))
          .filter((ev) => !(ev.type === 'job.started' && running.some((j) => j.id === ev.jobId)))
          .map((ev) => `${ev.type} ${ev.jobId}`)
          .sort();
      };
      await waitFor(async () => (await seen()).length >= expected.length);
      assert.deepEqual(await seen(), expected);
    });

    it('claims only the types asked for, with the outcomes of the last batch', async () => {
      const { queue } = await freshQueue(engine);
      const store = queue.store;
      const [first] = await queue.submitMany([{ agent: 't', type: 'small' }]);
      const [claimedFirst] = await store.claimJobs({ workerId: 'w1', agents: ['t'], types: ['small'], limit: 1, leaseMs: 30_000 });
      assert.equal(claimedFirst.id, first.id);
      const big = await queue.submit({ agent: 't', type: 'big', priority: 5 });
      const small = await queue.submit({ agent: 't', type: 'small' });
      const done = await finishAndClaim(
        store,
        [{ kind: 'complete', lease: lease(claimedFirst), result: '1' }],
        { workerId: 'w1', agents: ['t'], types: ['small'], limit: 5, leaseMs: 30_000 },
      );
      assert.deepEqual(done.took, [true]);
      assert.deepEqual(
        done.jobs.map((j) => j.id),
        [small.id],
        'the higher-priority job of another type is left for its own workers',
      );
      assert.equal((await store.getJob(big.id))?.status, 'pending');

      // Workers of one type each, many jobs: each runs only its own.
      const ran = new Map<string, string[]>();
      const handler = (who: string) => (job: Job) => void ran.set(who, [...(ran.get(who) ?? []), job.type]);
      const smallWorker = await startWorker(queue, { t: handler('small') }, { types: ['small'], concurrency: 4 });
      const bigWorker = await startWorker(queue, { t: handler('big') }, { types: ['big'], concurrency: 4 });
      const more = await queue.submitMany(
        Array.from({ length: 40 }, (_, i) => ({ agent: 't', type: i % 2 === 0 ? 'small' : 'big' })),
      );
      await store.finishJobs([{ kind: 'complete', lease: lease(done.jobs[0]), result: '2' }]);
      for (const job of [big, ...more]) assert.equal((await finished(queue, job.id)).status, 'completed');
      assert.deepEqual(new Set(ran.get('small')), new Set(['small']));
      assert.deepEqual(new Set(ran.get('big')), new Set(['big']));
      assert.equal((ran.get('small')?.length ?? 0) + (ran.get('big')?.length ?? 0), 41, 'each job ran once');
      await smallWorker.stop();
      await bigWorker.stop();
    });

    it('takes only the current attempt when a stale one of the same job reports in the same batch', async () => {
      const { queue } = await freshQueue(engine);
      const store = queue.store;
      const job = await queue.submit({ agent: 's', maxAttempts: 3 });
      const [first] = await claimAll(store, 's', 1);
      // The first attempt is given up on and the job runs again, here as a retry due at once.
      assert.deepEqual(await store.finishJobs([{ kind: 'retry', lease: lease(first), error: '{"message":"x"}', runAt: store.now() }]), [true]);
      const [second] = await waitFor(async () => {
        const jobs = await claimAll(store, 's', 1);
        return jobs.length > 0 ? jobs : null;
      });
      assert.equal(second.attempts, 2);
      const done = await finishAndClaim(
        store,
        [
          { kind: 'complete', lease: lease(first), result: '"stale"' },
          { kind: 'complete', lease: lease(second), result: '"current"' },
        ],
        { workerId: 'w1', agents: ['s'], limit: 1, leaseMs: 30_000 },
      );
      assert.deepEqual(done.took, [false, true]);
      const now = await store.getJob(job.id);
      assert.equal(now?.status, 'completed');
      assert.equal(now?.result, 'current');
      assert.deepEqual(await store.finishJobs([{ kind: 'complete', lease: lease(second), result: '"again"' }]), [false]);
    });

    it('records outcomes when there is no room to claim, and claims under a cap', async () => {
      const { queue } = await freshQueue(engine);
      const store = queue.store;
      const jobs = await queue.submitMany([1, 2, 3, 4].map((i) => ({ agent: 'y', payload: i })));
      const running = await claimAll(store, 'y', 2);
      assert.equal(running.length, 2);
      const none = await finishAndClaim(
        store,
        [{ kind: 'complete', lease: lease(running[0]), result: 'null' }],
        { workerId: 'w1', agents: ['y'], limit: 0, leaseMs: 30_000 },
      );
      assert.deepEqual(none, { took: [true], jobs: [] });
      assert.equal((await store.getJob(running[0].id))?.status, 'completed');

      // One may run at a time: the finished one frees the place for exactly one more.
      await store.setAgentConcurrency('y', 2);
      const capped = await finishAndClaim(
        store,
        [{ kind: 'complete', lease: lease(running[1]), result: 'null' }],
        { workerId: 'w1', agents: ['y'], limit: 5, leaseMs: 30_000 },
      );
      assert.deepEqual(capped.took, [true]);
      assert.equal(capped.jobs.length, 2, 'up to the cap of 2 running');
      await store.setAgentConcurrency('y', null);
      const rest = jobs.filter((j) => !running.some((r) => r.id === j.id)).map((j) => j.id);
      assert.deepEqual(new Set(capped.jobs.map((j) => j.id)), new Set(rest));
      const over = await finishAndClaim(
        store,
        [{ kind: 'release', lease: lease(capped.jobs[0]) }],
        { workerId: 'w1', agents: ['y'], limit: 5, leaseMs: 30_000 },
      );
      assert.deepEqual(over.took, [true], 'a release is written too');
      assert.deepEqual(
        over.jobs.map((j) => j.id),
        [capped.jobs[0].id],
        'the job handed back unspent is claimed again',
      );
      assert.equal(over.jobs[0].attempts, 1, 'its attempt was given back');
    });
  });
});
