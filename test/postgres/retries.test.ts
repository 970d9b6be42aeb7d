/**
 * Writes retried after the reply to their commit was lost. The store tries a
 * statement again when its connection fails; when the statement had already
 * committed, the second try must not write it twice nor report a conflict
 * with itself. The loss is made in the application's pool: the statement (or
 * a transaction's COMMIT) runs on the real server and commits, and the client
 * is then told that the connection dropped, as when it drops between the
 * commit and its reply.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { ConflictError, Queue } from '../../src/index.ts';
import type { PostgresStore } from '../../src/store/postgres/index.ts';
import { freshSchema, postgresBaseUrl, postgresUnavailable } from '../helpers/engines.ts';

type Callback = (error: Error | undefined, result?: unknown) => void;

/** A pool whose next statement matching `lose` commits but whose reply is lost. */
function lossyPool(url: string): { pool: pg.Pool; lose: (match: RegExp) => void; lost: () => number } {
  let pending: RegExp | null = null;
  let lost = 0;
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string } | null)?.text;
      if (!pending || typeof text !== 'string' || !pending.test(text)) return query(...args);
      pending = null;
      const dropped = () => {
        lost++;
        return new Error('Connection terminated unexpectedly');
      };
      const callback = args[args.length - 1];
      if (typeof callback === 'function') {
        return query(...args.slice(0, -1), (error: Error | undefined) => (callback as Callback)(error ?? dropped()));
      }
      return (query(...args) as Promise<unknown>).then(() => {
        throw dropped();
      });
    };
  });
  return { pool, lose: (match) => (pending = match), lost: () => lost };
}

describe('PostgreSQL writes retried after a lost reply', { skip: postgresUnavailable }, () => {
  it('records usage once, and creates a user and a token without a conflict with themselves', async () => {
    const { pool, lose, lost } = lossyPool(await postgresBaseUrl());
    try {
      const queue = await Queue.open(undefined, { pool, schema: freshSchema() });
      const store = queue.store as PostgresStore;
      const job = await queue.submit({ agent: 'llm' });
      const [claimed] = await store.claimJobs({ workerId: 'w1', agents: ['llm'], limit: 1, leaseMs: 60_000 });
      const lease = { id: claimed.id, workerId: 'w1', attempt: claimed.attempts };
      const usage = { jobId: job.id, model: 'm', inputTokens: 100, outputTokens: 20, costUsd: 0.5 };

      lose(/INSERT INTO .*job_usage/s);
      assert.equal(await store.addUsage(lease, usage), true);
      assert.equal(lost(), 1, 'the reply to the first write was lost');
      let totals = (await queue.limits.usage(job.id)).job;
      assert.equal(totals.tokens, 120, 'recorded once');
      assert.equal(totals.costUsd, 0.5);
      // The same usage reported again is a second record, not a retry.
      assert.equal(await store.addUsage(lease, usage), true);
      totals = (await queue.limits.usage(job.id)).job;
      assert.equal(totals.tokens, 240);
      // A lease that is not held still records nothing.
      assert.equal(await store.addUsage({ ...lease, workerId: 'w2' }, usage), false);
      assert.equal((await queue.limits.usage(job.id)).job.tokens, 240);

      lose(/INSERT INTO .*users/s);
      const user = await store.createUser('ana', 'user');
      assert.equal(lost(), 2, 'the reply to the user insert was lost');
      assert.equal(user.name, 'ana');
      assert.equal(user.role, 'user');
      assert.deepEqual(
        (await store.listUsers()).map((u) => u.name),
        ['ana'],
      );
      lose(/INSERT INTO .*tokens/s);
      const token = { id: 'tok1', user: 'ana', hash: 'ab'.repeat(32), createdAt: store.now() };
      assert.equal(await store.addToken(token), true);
      assert.equal(lost(), 3, 'the reply to the token insert was lost');
      assert.deepEqual(await store.findToken(token.hash), { tokenId: 'tok1', user: 'ana', role: 'user' });
      assert.equal((await store.getUser('ana'))?.tokens, 1);
      // A second create of the same name is still refused.
      await assert.rejects(store.createUser('ana', 'admin'), (e: unknown) => e instanceof ConflictError);
      await queue.close();
    } finally {
      await pool.end();
    }
  });

  it('appends logs and publishes events once when the reply to their commit was lost', async () => {
    const { pool, lose, lost } = lossyPool(await postgresBaseUrl());
    const schema = freshSchema();
    try {
      const queue = await Queue.open(undefined, { pool, schema });
      const store = queue.store as PostgresStore;
      const job = await queue.submit({ agent: 'a' });
      const log = (message: string) => ({ jobId: job.id, attempt: 1, level: 'info' as const, message, data: null });

      lose(/INSERT INTO .*job_logs/s);
      await store.appendLogs([log('one'), log('two')]);
      assert.equal(lost(), 1, 'the reply to the log append was lost');
      await store.appendLogs([log('three')]);
      assert.deepEqual(
        (await store.listLogs(job.id, 0, 100)).map((l) => l.message),
        ['one', 'two', 'three'],
      );

      const start = await queue.events.lastId();
      lose(/INSERT INTO .*events/s);
      const published = await queue.events.publish({ type: 'app.once', payload: { n: 1 } });
      assert.equal(lost(), 2, 'the reply to the publish was lost');
      const stored = await queue.events.list({ after: start, pattern: 'app.*' });
      assert.deepEqual(stored.map((e) => [e.id, e.type, e.payload]), [[published.id, 'app.once', { n: 1 }]]);

      // Several events in one append: written once, in the order given, and returned as written.
      const event = (n: number) => ({ type: 'app.many', source: 'test', target: null, jobId: null, owner: null, payload: `{"n":${n}}` });
      lose(/INSERT INTO .*events/s);
      const many = await store.appendEvents([event(1), event(2), event(3)]);
      assert.equal(lost(), 3, 'the reply to the append of three was lost');
      assert.deepEqual(many.map((e) => e.payload), ['{"n":1}', '{"n":2}', '{"n":3}']);
      assert.ok(many[0].id < many[1].id && many[1].id < many[2].id, 'ids in the order given');
      const listed = await queue.events.list({ after: published.id, pattern: 'app.*' });
      assert.deepEqual(listed.map((e) => [e.id, e.payload]), many.map((e) => [e.id, JSON.parse(e.payload)]));

      // Appends' ids are kept an hour, far past any retry, and dropped with event retention.
      await pool.query(`INSERT INTO "${schema}".writes (id) VALUES ('00000000000000000000000000')`);
      const count = async () => Number((await pool.query(`SELECT count(*) AS n FROM "${schema}".writes`)).rows[0].n);
      assert.equal(await count(), 5);
      await store.deleteEvents(0);
      assert.equal(await count(), 4, 'only the old one dropped');
      await queue.close();
    } finally {
      await pool.end();
    }
  });

  it('creates and removes a schedule whose transaction committed but whose reply was lost', async () => {
    const { pool, lose, lost } = lossyPool(await postgresBaseUrl());
    try {
      const queue = await Queue.open(undefined, { pool, schema: freshSchema() });
      lose(/^COMMIT$/);
      const created = await queue.schedules.create({ name: 'nightly', cron: '0 3 * * *', agent: 'a' });
      assert.equal(lost(), 1, 'the reply to the commit was lost');
      assert.equal(created.name, 'nightly');
      assert.deepEqual(
        (await queue.schedules.list()).map((s) => [s.id, s.name]),
        [[created.id, 'nightly']],
      );
      // A second schedule of the same name is still refused.
      await assert.rejects(
        queue.schedules.create({ name: 'nightly', cron: '0 4 * * *', agent: 'a' }),
        (e: unknown) => e instanceof ConflictError,
      );

      lose(/^COMMIT$/);
      const removed = await queue.schedules.remove('nightly');
      assert.equal(lost(), 2, 'the reply to the commit was lost');
      assert.equal(removed.id, created.id);
      assert.deepEqual(await queue.schedules.list(), []);
      await queue.close();
    } finally {
      await pool.end();
    }
  });
});
