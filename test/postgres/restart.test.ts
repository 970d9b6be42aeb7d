/**
 * The PostgreSQL server restarted under running workers: they reconnect by
 * themselves, LISTEN resumes, and every job submitted before the restart
 * completes. This file starts a server of its own, since it stops it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Queue } from '../../src/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { postgresUnavailable, tempDir } from '../helpers/engines.ts';
import { startPostgres, type PostgresServer } from '../helpers/postgres-server.ts';
import { readLedger, startWorkerProcess } from '../helpers/processes.ts';
import { waitFor } from '../helpers/wait.ts';

describe('PostgreSQL server restart', { skip: postgresUnavailable }, () => {
  let server: PostgresServer;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });

  /** Sessions that listen for agentq's notifications. */
  async function listeners(): Promise<number> {
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      const r = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'agentq-listen'`,
      );
      return r.rows[0].n;
    } finally {
      await client.end();
    }
  }

  it('workers reconnect, LISTEN resumes, and no job submitted before the restart is lost', async () => {
    const url = `${server.url}?schema=restart`;
    const queue = await Queue.open(url);
    const ledger = join(tempDir(), 'ledger');
    // Polling every 30 s: after the restart, only a notification wakes them quickly.
    const base = { db: url, ledger, agent: 'flow', mode: 'sleep', concurrency: 8, leaseMs: 5000, pollIntervalMs: 30_000 };
    const workers = [startWorkerProcess(base), startWorkerProcess(base)];
    await Promise.all(workers.map((w) => w.ready));
    await waitFor(async () => (await listeners()) === 2, { what: 'both workers to listen' });

    const jobs = await queue.submitMany(Array.from({ length: 400 }, () => ({ agent: 'flow', payload: { ms: 5 } })));
    await waitFor(async () => (await queue.stats()).byStatus.completed >= 50, { what: 'jobs to flow' });

    await server.halt();
    await server.start();

    await waitFor(
      async () => {
        const stats = await queue.stats();
        return stats.byStatus.completed === jobs.length;
      },
      { timeoutMs: 60_000, intervalMs: 50, what: 'every job submitted before the restart to complete' },
    );
    for (const job of jobs) assert.equal((await queue.get(job.id)).status, 'completed');
    const ended = new Set(readLedger(ledger).filter((l) => l.event === 'end').map((l) => l.id));
    assert.ok(jobs.every((j) => ended.has(j.id)), 'each ran to its end at least once');

    // LISTEN is back in both workers: a new job starts at once, not at the next 30 s poll.
    await waitFor(async () => (await listeners()) === 2, { what: 'both workers to listen again' });
    const late = await queue.submit({ agent: 'flow', payload: { ms: 1 } });
    await waitFor(async () => (await queue.get(late.id)).status === 'completed', {
      timeoutMs: 5000,
      what: 'a job submitted after the restart to be woken for',
    });
    for (const w of workers) w.child.kill('SIGTERM');
    for (const w of workers) assert.equal((await w.exited).code, 0, w.stderr());
    await queue.close();
  });

  it('re-establishes a listening connection that was cut, and hears notifications again', async () => {
    const store = new PostgresStore(`${server.url}?schema=relisten`);
    await store.connect();
    await store.migrate();
    let heard = 0;
    const stop = store.onChange(() => heard++);
    await waitFor(() => store.listening, { what: 'the listener to connect' });
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'agentq-listen'`);
      await waitFor(() => !store.listening, { what: 'the cut to be noticed' });
      await waitFor(() => store.listening, { what: 'the listener to reconnect' });
      const before = heard;
      await admin.query(`NOTIFY "agentq.relisten"`);
      await waitFor(() => heard > before, { what: 'a notification after the reconnect' });
    } finally {
      await admin.end();
      stop();
      await store.close();
    }
  });
});
