/**
 * PostgreSQL specifics: time judged by the database clock on hosts whose
 * clocks are wrong, the schema option, an application's own pool, and bad
 * options refused by name.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { openStore, Queue, ValidationError, Worker } from '../../src/index.ts';
import { PostgresStore } from '../../src/store/postgres/index.ts';
import { freshSchema, postgresBaseUrl, postgresUnavailable } from '../helpers/engines.ts';
import { deferred, waitFor } from '../helpers/wait.ts';
import { readFileSync } from 'node:fs';
import { freshDb, start } from '../cli/run.ts';

const HOUR = 3_600_000;

/** A queue as a host whose clock is `skewMs` off would open it. */
async function skewedQueue(url: string, skewMs: number): Promise<Queue> {
  const store = new PostgresStore(url, { hostClock: () => Date.now() + skewMs });
  await store.connect();
  await store.migrate();
  return new Queue(store);
}

describe('PostgreSQL options and time', { skip: postgresUnavailable }, () => {
  it('judges run-at and leases by the database clock when the hosts’ clocks are an hour off either way', async () => {
    const url = `${await postgresBaseUrl()}?schema=${freshSchema()}`;
    const ahead = await skewedQueue(url, HOUR);
    const behind = await skewedQueue(url, -HOUR);
    try {
      // Both hosts read the server's time, not their own.
      assert.ok(Math.abs(ahead.store.now() - behind.store.now()) < 1000);
      assert.ok(Math.abs(ahead.store.now() - Date.now()) < 1000);

      // Submitted by the fast host, due now: the slow host runs it at once.
      const started = deferred<string>();
      const gate = deferred();
      const worker = new Worker(behind, {
        handlers: {
          w: async (job) => {
            started.resolve(job.id);
            await gate.promise;
          },
        },
        leaseMs: 1500,
        heartbeatIntervalMs: 100,
        pollIntervalMs: 50,
      });
      worker.on('error', (e) => assert.fail(e as Error));
      await worker.start();
      const now = await ahead.submit({ agent: 'w' });
      assert.equal(await started.promise, now.id);

      // The slow host holds its lease; the fast host, rescuing, must not think it expired an hour ago.
      const held = await ahead.get(now.id);
      assert.ok(Date.parse(held.leaseExpiresAt!) - ahead.store.now() <= 1500);
      assert.deepEqual(await ahead.rescueExpired(), { requeued: [], failed: [] });

      // Submitted by the slow host with a delay: the fast host must not take it an hour early.
      const later = await behind.submit({ agent: 'x', delayMs: 60_000 });
      assert.deepEqual(await ahead.store.claimJobs({ workerId: 'fast', agents: ['x'], limit: 1, leaseMs: 1000 }), []);
      assert.ok(Math.abs(Date.parse(later.runAt) - (Date.now() + 60_000)) < 1000);

      gate.resolve();
      await waitFor(async () => (await ahead.get(now.id)).status === 'completed');
      await worker.stop();
    } finally {
      await ahead.close();
      await behind.close();
    }
  });

  it('lives in its own schema beside an application’s tables, from the URL or an option', async () => {
    const base = await postgresBaseUrl();
    const app = new pg.Client({ connectionString: base });
    await app.connect();
    const appSchema = freshSchema();
    try {
      await app.query(`CREATE SCHEMA ${appSchema}; CREATE TABLE ${appSchema}.jobs (id int PRIMARY KEY, what text)`);
      await app.query(`INSERT INTO ${appSchema}.jobs VALUES (1, 'the application''s own')`);
      const fromUrl = await Queue.open(`${base}?schema=${appSchema}_q`);
      const fromOption = await Queue.open(base, { schema: `${appSchema}_o` });
      await fromUrl.submit({ agent: 'a' });
      await fromOption.submitMany([{ agent: 'b' }, { agent: 'b' }]);
      assert.equal((await fromUrl.stats()).total, 1);
      assert.equal((await fromOption.stats()).total, 2);
      const own = await app.query(`SELECT * FROM ${appSchema}.jobs`);
      assert.deepEqual(own.rows, [{ id: 1, what: "the application's own" }]);
      const tables = await app.query<{ table_schema: string }>(
        `SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = 'jobs' AND table_schema LIKE $1`,
        [`${appSchema}%`],
      );
      assert.deepEqual(tables.rows.map((r) => r.table_schema).sort(), [appSchema, `${appSchema}_o`, `${appSchema}_q`]);
      await fromUrl.close();
      await fromOption.close();
    } finally {
      await app.end();
    }
  });

  it('works through an application’s own pg.Pool, and leaves it open', async () => {
    const pool = new pg.Pool({ connectionString: await postgresBaseUrl(), max: 4 });
    try {
      const queue = await Queue.open(undefined, { pool, schema: freshSchema() });
      assert.equal(queue.store.engine, 'postgres');
      const worker = new Worker(queue, { handlers: { a: (job) => ({ echo: job.payload }) }, pollIntervalMs: 50 });
      await worker.start();
      const job = await queue.submit({ agent: 'a', payload: 7 });
      assert.deepEqual((await queue.wait(job.id, { timeoutMs: 10_000 })).result, { echo: 7 });
      await worker.stop();
      await queue.close();
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1, 'the pool is still open');
    } finally {
      await pool.end();
    }
  });

  it('refuses bad options by name', async () => {
    const base = await postgresBaseUrl();
    await assert.rejects(openStore(`${base}?schema=bad-name`), (e: ValidationError) => e.field === 'schema');
    await assert.rejects(openStore(base, { schema: 'x"; DROP TABLE y; --' }), (e: ValidationError) => e.field === 'schema');
    await assert.rejects(openStore('/tmp/x.db', { pool: new pg.Pool() }), (e: ValidationError) => e.field === 'pool');
    await assert.rejects(openStore('postgres://', {}), (e: unknown) => e instanceof Error);
    const queue = await Queue.open(`${base}?schema=${freshSchema()}`);
    try {
      await assert.rejects(queue.submit({ agent: 'a', instructions: 'nul \u0000 inside' }), (e: ValidationError) => e.field === 'instructions');
      await assert.rejects(queue.submit({ agent: 'a', key: 'k\u0000' }), (e: ValidationError) => e.field === 'key');
      assert.equal((await queue.stats()).total, 0);
    } finally {
      await queue.close();
    }
  });

  it('runs `agentq worker` with a 16 MB young generation on PostgreSQL and 4 MB on SQLite', async () => {
    /** The V8 flags of the child Node that `agentq worker` runs the worker in. */
    const childFlags = async (db: string): Promise<string[]> => {
      const worker = start(db, ['worker', '--agent', 'echo', '--poll-interval', '100ms']);
      try {
        await worker.output(/serving echo/, 'the worker banner');
        const pid = worker.child.pid!;
        const [child] = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
        assert.ok(child, 'agentq worker runs in a child process');
        return readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').filter((a) => a.startsWith('--max-semi-space-size'));
      } finally {
        worker.child.kill('SIGTERM');
        assert.equal((await worker.exited).code, 0);
      }
    };
    assert.deepEqual(await childFlags(`${await postgresBaseUrl()}?schema=${freshSchema()}`), ['--max-semi-space-size=16']);
    assert.deepEqual(await childFlags(freshDb()), ['--max-semi-space-size=4']);
  });
});
