/**
 * PostgreSQL with many processes: a big race over one queue, and many
 * processes migrating an empty database at the same moment.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { Queue } from '../../src/index.ts';
import { migrations } from '../../src/store/postgres/migrations.ts';
import { freshQueue, engines, postgresBaseUrl, postgresUnavailable, tempDir, freshSchema } from '../helpers/engines.ts';
import { readLedger, startWorkerProcess } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

const postgres = engines.find((e) => e.name === 'postgres')!;

describe('PostgreSQL worker processes', { skip: postgresUnavailable }, () => {
  it('runs each of 10,000 jobs exactly once across four racing worker processes', async () => {
    const { queue, url } = await freshQueue(postgres);
    const ledger = join(tempDir(), 'ledger');
    const base = { db: url, ledger, agent: 'race', mode: 'ledger', concurrency: 16 };
    const workers = Array.from({ length: 4 }, () => startWorkerProcess(base));
    await Promise.all(workers.map((w) => w.ready));
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const jobs = await queue.submitMany(Array.from({ length: 1000 }, (_, k) => ({ agent: 'race', payload: i * 1000 + k })));
      ids.push(...jobs.map((j) => j.id));
    }
    await waitFor(async () => (await queue.stats()).byStatus.completed === 10_000, {
      timeoutMs: 120_000,
      intervalMs: 100,
      what: 'all 10,000 jobs to complete',
    });
    const runs = readLedger(ledger);
    const perJob = new Map<string, number>();
    for (const r of runs) perJob.set(r.id, (perJob.get(r.id) ?? 0) + 1);
    assert.equal(runs.length, 10_000, 'one handler call per job');
    assert.deepEqual(new Set(perJob.keys()), new Set(ids));
    assert.ok([...perJob.values()].every((n) => n === 1), 'no job ran twice');
    assert.equal(new Set(runs.map((r) => r.pid)).size, 4, 'all four workers took part');
    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) assert.equal((await w.exited).code, 0, w.stderr());
  });

  it('migrates an empty database once when 20 processes start on it at the same moment, and all of them work', async () => {
    const schema = freshSchema();
    const base = new URL(await postgresBaseUrl());
    base.searchParams.set('schema', schema);
    const url = base.toString();
    const script = `
      import { openQueue, Worker } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)};
      const q = await openQueue(process.argv[1]);
      const agent = 'proc-' + process.pid;
      const jobs = await q.submitMany([{ agent }, { agent }, { agent }]);
      const worker = new Worker(q, { handlers: { [agent]: () => process.pid }, pollIntervalMs: 100 });
      await worker.start();
      for (const job of jobs) {
        const done = await q.wait(job.id, { timeoutMs: 60000, pollMs: 100 });
        if (done.result !== process.pid) throw new Error('wrong result ' + JSON.stringify(done));
      }
      await worker.stop();
      await q.close();
      process.stdout.write('ok ' + process.pid);`;
    const results = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
            const child = spawn(process.execPath, ['--input-type=module', '-e', script, url]);
            let out = '';
            let err = '';
            child.stdout.on('data', (d) => (out += d));
            child.stderr.on('data', (d) => (err += d));
            child.on('exit', (code) => resolve({ code, out, err }));
          }),
      ),
    );
    for (const r of results) {
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /^ok \d+$/);
    }
    const client = new pg.Client({ connectionString: await postgresBaseUrl() });
    await client.connect();
    try {
      const applied = await client.query<{ version: number; applied_by: string }>(
        `SELECT version, applied_by FROM "${schema}".agentq_migrations ORDER BY version`,
      );
      assert.deepEqual(
        applied.rows.map((r) => r.version),
        migrations.map((m) => m.version),
        'each migration applied once',
      );
      assert.equal(new Set(applied.rows.map((r) => r.applied_by)).size, 1, 'by one of the processes');
      const pids = results.map((r) => r.out.slice(3));
      assert.ok(pids.includes(applied.rows[0].applied_by));
    } finally {
      await client.end();
    }
    const queue = await Queue.open(url);
    const stats = await queue.stats();
    assert.equal(stats.total, 60);
    assert.equal(stats.byStatus.completed, 60);
    await queue.close();
  });
});
