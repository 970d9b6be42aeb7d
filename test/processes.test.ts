/**
 * Real worker processes: killed, paused and racing. Leases here are short real
 * durations (a second or two), since a clock cannot be moved inside another
 * process; every wait is for a condition, never a fixed sleep.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Queue } from '../src/index.ts';
import { forEachEngine, freshQueue, tempDir } from './helpers/engines.ts';
import { readLedger, startWorkerProcess } from './helpers/processes.ts';
import { waitFor } from './helpers/wait.ts';

forEachEngine((engine) => {
  describe(`worker processes [${engine.name}]`, () => {
    it('runs a job again after its worker was killed with SIGKILL', async () => {
      const { queue, url } = await freshQueue(engine);
      const ledger = join(tempDir(), 'ledger');
      const base = { db: url, ledger, agent: 'crash', leaseMs: 1000, rescueIntervalMs: 100 };
      const first = startWorkerProcess({ ...base, mode: 'block' });
      await first.ready;
      const job = await queue.submit({ agent: 'crash', payload: { untilMs: 0 } });
      await waitFor(() => readLedger(ledger).some((l) => l.event === 'start'), { what: 'the first run to start' });
      first.child.kill('SIGKILL');
      assert.equal((await first.exited).signal, 'SIGKILL');
      assert.equal((await queue.get(job.id)).status, 'running', 'the dead worker still holds the lease');

      const second = startWorkerProcess({ ...base, mode: 'ledger' });
      await second.ready;
      const done = await waitFor(
        async () => {
          const j = await queue.get(job.id);
          return j.status === 'completed' ? j : null;
        },
        { what: 'the job to complete on the second worker' },
      );
      assert.equal(done.attempts, 2);
      assert.deepEqual(done.result, { pid: second.child.pid });
      const lines = readLedger(ledger);
      assert.deepEqual(
        lines.map((l) => [l.event, l.pid, l.attempt]),
        [
          ['start', first.child.pid, 1],
          ['run', second.child.pid, 2],
        ],
      );
      second.child.kill('SIGTERM');
      assert.equal((await second.exited).code, 0);
    });

    it('refuses the late completion of a worker paused past its lease', async () => {
      const { queue, url } = await freshQueue(engine);
      const ledger = join(tempDir(), 'ledger');
      const base = { db: url, ledger, agent: 'pause', leaseMs: 1000, rescueIntervalMs: 100 };
      const a = startWorkerProcess({ ...base, mode: 'block' });
      await a.ready;
      // A finishes 1.5 s after it starts, unless stopped: by then its lease is gone.
      const job = await queue.submit({ agent: 'pause', payload: { untilMs: 1500 } });
      await waitFor(() => readLedger(ledger).some((l) => l.event === 'start'), { what: 'A to start' });
      a.child.kill('SIGSTOP');

      const b = startWorkerProcess({ ...base, mode: 'ledger' });
      await b.ready;
      await waitFor(async () => (await queue.get(job.id)).status === 'completed', { what: 'B to complete the job' });
      a.child.kill('SIGCONT');
      // A wakes up, finds its lease gone, and drops its result.
      await waitFor(() => readLedger(ledger).some((l) => l.event === 'dropped' && l.pid === a.child.pid), {
        what: 'A to drop the job',
      });
      const final = await queue.get(job.id);
      assert.equal(final.status, 'completed');
      assert.equal(final.attempts, 2);
      assert.deepEqual(final.result, { pid: b.child.pid });
      assert.match(final.workerId ?? '', new RegExp(`:${b.child.pid}/`));
      a.child.kill('SIGTERM');
      b.child.kill('SIGTERM');
      await Promise.all([a.exited, b.exited]);
    });

    it('runs each of 2,000 jobs exactly once across two racing worker processes', async () => {
      const { queue, url } = await freshQueue(engine);
      const ledger = join(tempDir(), 'ledger');
      const base = { db: url, ledger, agent: 'race', mode: 'ledger', concurrency: 16 };
      const workers = [startWorkerProcess(base), startWorkerProcess(base)];
      await Promise.all(workers.map((w) => w.ready));
      const jobs = await queue.submitMany(Array.from({ length: 2000 }, (_, i) => ({ agent: 'race', payload: i })));
      await waitFor(async () => (await queue.stats()).byStatus.completed === 2000, {
        timeoutMs: 60_000,
        what: 'all 2,000 jobs to complete',
      });
      const runs = readLedger(ledger);
      assert.equal(runs.length, 2000);
      const perJob = new Map<string, number>();
      for (const r of runs) perJob.set(r.id, (perJob.get(r.id) ?? 0) + 1);
      assert.deepEqual(new Set(perJob.keys()), new Set(jobs.map((j) => j.id)));
      assert.ok([...perJob.values()].every((n) => n === 1), 'no job ran twice');
      const pids = new Set(runs.map((r) => r.pid));
      assert.equal(pids.size, 2, 'both workers took part');
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
    });

    it('holds a global concurrency cap across processes', async () => {
      const { queue, url } = await freshQueue(engine);
      await queue.setAgentConcurrency('capped', 2);
      const ledger = join(tempDir(), 'ledger');
      const base = { db: url, ledger, agent: 'capped', mode: 'sleep', concurrency: 5 };
      const workers = [startWorkerProcess(base), startWorkerProcess(base)];
      await Promise.all(workers.map((w) => w.ready));
      await queue.submitMany(Array.from({ length: 20 }, () => ({ agent: 'capped', payload: { ms: 15 } })));
      await waitFor(async () => (await queue.stats()).byStatus.completed === 20, { timeoutMs: 30_000 });
      let now = 0;
      let peak = 0;
      for (const line of readLedger(ledger)) {
        now += line.event === 'start' ? 1 : -1;
        peak = Math.max(peak, now);
      }
      assert.equal(peak, 2);
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
    });

    it('gives one job to every process that submits the same key at once', async () => {
      const { url } = await freshQueue(engine);
      const { spawn } = await import('node:child_process');
      const script = `
        import { openQueue } from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)};
        const q = await openQueue(process.argv[1]);
        const ids = [];
        for (let i = 0; i < 50; i++) ids.push((await q.submit({ agent: 'a', key: 'k' + i })).id);
        process.stdout.write(JSON.stringify(ids));
        await q.close();`;
      const outputs = await Promise.all(
        Array.from(
          { length: 4 },
          () =>
            new Promise<string[]>((resolve, reject) => {
              const child = spawn(process.execPath, ['--input-type=module', '-e', script, url]);
              let out = '';
              let err = '';
              child.stdout.on('data', (d) => (out += d));
              child.stderr.on('data', (d) => (err += d));
              child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(err))));
            }),
        ),
      );
      for (const ids of outputs.slice(1)) assert.deepEqual(ids, outputs[0]);
      const queue = await Queue.open(url);
      assert.equal((await queue.stats()).total, 50);
      await queue.close();
    });

    it('stops a worker process gracefully on SIGTERM, handing back what it could not finish', async () => {
      const { queue, url } = await freshQueue(engine);
      const ledger = join(tempDir(), 'ledger');
      const w = startWorkerProcess({ db: url, ledger, agent: 'grace', mode: 'block', concurrency: 2, shutdownGraceMs: 300 });
      await w.ready;
      const quick = await queue.submit({ agent: 'grace', payload: { untilMs: 100 } });
      const slow = await queue.submit({ agent: 'grace', payload: { untilMs: 60_000 } });
      await waitFor(() => readLedger(ledger).filter((l) => l.event === 'start').length === 2);
      w.child.kill('SIGTERM');
      assert.equal((await w.exited).code, 0);
      assert.equal((await queue.get(quick.id)).status, 'completed');
      const handedBack = await queue.get(slow.id);
      assert.deepEqual([handedBack.status, handedBack.attempts], ['pending', 0]);
    });
  });
});
