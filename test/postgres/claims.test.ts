/**
 * Claims under many concurrent claimers: never more than asked, never one job
 * twice, never past an agent's global cap — with hundreds of claims in flight
 * at once from several pools (as from several hosts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../src/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { engines, freshQueue, postgresUnavailable } from '../helpers/engines.ts';

const postgres = engines.find((e) => e.name === 'postgres')!;

describe('PostgreSQL claims under contention', { skip: postgresUnavailable }, () => {
  it('hands out each job once, at most the limit per claim, and holds caps, with 240 claimers at once', async () => {
    const { queue, url } = await freshQueue(postgres);
    await queue.setAgentConcurrency('capped3', 3);
    await queue.setAgentConcurrency('capped7', 7);
    await queue.submitMany(Array.from({ length: 1500 }, (_, i) => ({ agent: 'free', priority: i % 5 })));
    await queue.submitMany(Array.from({ length: 200 }, () => ({ agent: 'capped3' })));
    await queue.submitMany(Array.from({ length: 200 }, () => ({ agent: 'capped7' })));
    const stores = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const store = new PostgresStore(url, { max: 60 });
        await store.connect();
        return store;
      }),
    );
    const seen = new Map<string, string>();
    let claims = 0;
    const claimer = async (n: number): Promise<void> => {
      const store = stores[n % stores.length];
      const limit = 1 + (n % 7);
      const agents = n % 3 === 0 ? ['capped3', 'free', 'capped7'] : n % 3 === 1 ? ['free'] : ['capped7', 'capped3'];
      for (;;) {
        const jobs: Job[] = await store.claimJobs({ workerId: `w${n}`, agents, limit, leaseMs: 60_000 });
        claims++;
        assert.ok(jobs.length <= limit, `claim of ${limit} got ${jobs.length}`);
        for (const job of jobs) {
          assert.ok(!seen.has(job.id), `job ${job.id} handed to ${seen.get(job.id)} and w${n}`);
          seen.set(job.id, `w${n}`);
          assert.equal(job.status, 'running');
          assert.equal(job.workerId, `w${n}`);
        }
        if (jobs.length === 0) return;
      }
    };
    await Promise.all(Array.from({ length: 240 }, (_, n) => claimer(n)));
    assert.ok(claims > 240);
    const stats = await queue.stats();
    // Nothing finished, so every claimed capped job still runs: exactly the cap.
    assert.equal(stats.byAgent.capped3.running, 3);
    assert.equal(stats.byAgent.capped7.running, 7);
    assert.equal(stats.byAgent.free.running, 1500);
    assert.equal(seen.size, 1510);

    // Finish the capped ones and claim again, concurrently: the cap holds again.
    const running = (await queue.list({ status: 'running', agent: ['capped3', 'capped7'], limit: 100 })).jobs;
    await stores[0].finishJobs(
      running.map((j) => ({ kind: 'complete', lease: { id: j.id, workerId: j.workerId!, attempt: j.attempts }, result: 'null' })),
    );
    const again = await Promise.all(
      Array.from({ length: 100 }, (_, n) =>
        stores[n % 4].claimJobs({ workerId: `again${n}`, agents: ['capped3', 'capped7'], limit: 5, leaseMs: 60_000 }),
      ),
    );
    const counts = { capped3: 0, capped7: 0 } as Record<string, number>;
    for (const jobs of again) for (const j of jobs) counts[j.agent]++;
    assert.deepEqual(counts, { capped3: 3, capped7: 7 });
    for (const store of stores) await store.close();
  });
});
