/** Submitting, reading, listing, cancelling, retrying and cleaning up jobs. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AmbiguousIdError,
  ConflictError,
  ManualClock,
  NotFoundError,
  Queue,
  PayloadTooLargeError,
  SchemaBehindError,
  ValidationError,
  WaitTimeoutError,
  type Job,
} from '../src/index.ts';
import { forEachEngine, freshQueue } from './helpers/engines.ts';

forEachEngine((engine) => {
  describe(`jobs [${engine.name}]`, () => {
    it('submits a job with defaults and reads it back', async () => {
      const { queue } = await freshQueue(engine);
      const job = await queue.submit({ agent: 'researcher', instructions: 'find things', payload: { q: 'x' } });
      assert.equal(job.status, 'pending');
      assert.equal(job.agent, 'researcher');
      assert.equal(job.type, 'default');
      assert.deepEqual(job.payload, { q: 'x' });
      assert.equal(job.attempts, 0);
      assert.equal(job.maxAttempts, 3);
      assert.equal(job.progress, 0);
      assert.equal(job.durationMs, null);
      assert.match(job.id, /^[0-9A-Z]{26}$/);
      assert.deepEqual(await queue.get(job.id), job);
    });

    it('opened without migrating, refuses a database whose schema is behind and says to migrate', async () => {
      const url = await engine.freshUrl();
      await assert.rejects(Queue.open(url, { migrate: false }), (error: unknown) => {
        assert.ok(error instanceof SchemaBehindError);
        assert.equal(error.code, 'schema_behind');
        assert.equal((error.details as { current: number }).current, 0);
        assert.match(error.message, /agentq migrate/);
        return true;
      });
      const migrated = await Queue.open(url);
      const { current, latest } = await migrated.store.schemaVersion();
      assert.equal(current, latest);
      await migrated.close();
      const queue = await Queue.open(url, { migrate: false });
      assert.equal((await queue.submit({ agent: 'a' })).status, 'pending', 'a current schema opens');
      await queue.close();
    });

    it('submits a batch in one transaction, all or nothing', async () => {
      const { queue } = await freshQueue(engine);
      const jobs = await queue.submitMany([
        { agent: 'a', payload: 1 },
        { agent: 'b', payload: 2 },
      ]);
      assert.deepEqual(
        jobs.map((j) => j.payload),
        [1, 2],
      );
      await assert.rejects(
        queue.submitMany([{ agent: 'a' }, { agent: 'a', maxAttempts: 0 }]),
        (e: ValidationError) => e.field === '1.maxAttempts',
      );
      await assert.rejects(
        queue.submitMany([{ agent: 'a' }, { agent: 'a', dependsOn: ['missing'] }]),
        (e: ValidationError) => e.field === '1.dependsOn.0',
      );
      assert.equal((await queue.stats()).total, 2);
    });

    it('refuses bad input with an error naming the field, storing nothing', async () => {
      const { queue } = await freshQueue(engine, { maxPayloadBytes: 1000 });
      const cases: Array<[unknown, string]> = [
        [{}, 'agent'],
        [{ agent: '' }, 'agent'],
        [{ agent: 42 }, 'agent'],
        [{ agent: 'a', priority: 'high' }, 'priority'],
        [{ agent: 'a', priority: 1.5 }, 'priority'],
        [{ agent: 'a', maxAttempts: -1 }, 'maxAttempts'],
        [{ agent: 'a', maxAttempts: 2.5 }, 'maxAttempts'],
        [{ agent: 'a', maxAttempts: 0 }, 'maxAttempts'],
        [{ agent: 'a', timeoutMs: 0 }, 'timeoutMs'],
        [{ agent: 'a', tags: 'x' }, 'tags'],
        [{ agent: 'a', tags: ['ok', 3] }, 'tags.1'],
        [{ agent: 'a', payload: { f: () => 1 } }, 'payload'],
        [{ agent: 'a', metadata: [] }, 'metadata'],
        [{ agent: 'a', runAt: 'tomorrow' }, 'runAt'],
        [{ agent: 'a', delayMs: -5 }, 'delayMs'],
        [{ agent: 'a', delayMs: 5, runAt: Date.now() }, 'delayMs'],
        [{ agent: 'a', backoff: { delayMs: -1 } }, 'backoff.delayMs'],
        [{ agent: 'a', dependsOn: ['does-not-exist'] }, 'dependsOn.0'],
        [{ agent: 'a', parentId: 'does-not-exist' }, 'parentId'],
        [{ agent: 'a', colour: 'red' }, 'colour'],
        [{ agent: 'a\u0000b' }, 'agent'],
        [null, 'body'],
      ];
      for (const [input, field] of cases) {
        await assert.rejects(
          queue.submit(input as never),
          (e: unknown) => {
            assert.ok(e instanceof ValidationError, `${JSON.stringify(input)}: ${String(e)}`);
            assert.equal(e.field, field, `${JSON.stringify(input)} names ${e.field}`);
            assert.equal(e.status, 400);
            return true;
          },
          `${JSON.stringify(input)} is refused`,
        );
      }
      await assert.rejects(queue.submit({ agent: 'a', payload: 'x'.repeat(2000) }), (e: unknown) => {
        assert.ok(e instanceof PayloadTooLargeError);
        assert.equal(e.status, 413);
        assert.equal(e.details?.field, 'payload');
        return true;
      });
      assert.equal((await queue.stats()).total, 0);
      assert.deepEqual((await queue.list()).jobs, []);
    });

    it('returns the existing job for a repeated idempotency key, even to concurrent callers', async () => {
      const { queue } = await freshQueue(engine);
      const jobs = await Promise.all(
        Array.from({ length: 20 }, (_, i) => queue.submit({ agent: 'a', key: 'once', payload: i })),
      );
      assert.equal(new Set(jobs.map((j) => j.id)).size, 1);
      assert.equal((await queue.stats()).total, 1);
      const again = await queue.submitMany([
        { agent: 'a', key: 'once' },
        { agent: 'a', key: 'twice' },
        { agent: 'a', key: 'twice' },
      ]);
      assert.equal(again[0].id, jobs[0].id);
      assert.equal(again[1].id, again[2].id);
      assert.equal((await queue.stats()).total, 2);
    });

    it('finds jobs by an unambiguous id prefix', async () => {
      const { queue } = await freshQueue(engine);
      const jobs = await queue.submitMany(Array.from({ length: 3 }, () => ({ agent: 'a' })));
      const id = jobs[1].id;
      let unique = 0;
      while (jobs.filter((j) => j.id.startsWith(id.slice(0, unique))).length > 1) unique++;
      assert.equal((await queue.get(id.slice(0, unique).toLowerCase())).id, id);
      await assert.rejects(queue.get(id.slice(0, 2)), AmbiguousIdError);
      await assert.rejects(queue.get('ZZZZ'), NotFoundError);
    });

    it('tells the jobs of one batch apart by the first 12 characters of their ids, which find them', async () => {
      const { queue } = await freshQueue(engine);
      const jobs = await queue.submitMany(Array.from({ length: 1500 }, (_, i) => ({ agent: 'a', payload: i })));
      const short = jobs.map((j) => j.id.slice(0, 12));
      assert.equal(new Set(short).size, jobs.length, 'no two jobs of the batch share a short id');
      assert.deepEqual(
        jobs.map((j) => j.id),
        jobs.map((j) => j.id).toSorted(),
        'ids sort in submission order',
      );
      for (const i of [0, 1, 511, 1499]) assert.equal((await queue.get(short[i])).payload, i);
      const page = await queue.list({ order: 'asc', limit: 1000 });
      assert.deepEqual(
        page.jobs.map((j) => j.payload),
        Array.from({ length: 1000 }, (_, i) => i),
        'oldest first is submission order',
      );
    });

    it('lists with filters, status aliases and keyset pages', async () => {
      const { queue } = await freshQueue(engine);
      const submitted: Job[] = [];
      for (let i = 0; i < 25; i++) {
        submitted.push(
          await queue.submit({
            agent: i % 2 ? 'odd' : 'even',
            type: i % 5 === 0 ? 'fives' : 'plain',
            owner: i < 10 ? 'ann' : 'bob',
            tags: i % 3 === 0 ? ['three'] : [],
          }),
        );
      }
      await queue.cancel(submitted[0].id);
      const pages: Job[] = [];
      let cursor: string | undefined;
      do {
        const page = await queue.list({ limit: 7, cursor });
        pages.push(...page.jobs);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      assert.deepEqual(
        pages.map((j) => j.id),
        submitted.map((j) => j.id).reverse(),
      );
      const asc = await queue.list({ limit: 3, order: 'asc' });
      assert.deepEqual(
        asc.jobs.map((j) => j.id),
        submitted.slice(0, 3).map((j) => j.id),
      );
      assert.equal((await queue.list({ agent: 'odd', limit: 100 })).jobs.length, 12);
      assert.equal((await queue.list({ type: 'fives', limit: 100 })).jobs.length, 5);
      assert.equal((await queue.list({ owner: 'ann', limit: 100 })).jobs.length, 10);
      assert.equal((await queue.list({ tag: 'three', limit: 100 })).jobs.length, 9);
      assert.equal((await queue.list({ status: 'queued', limit: 100 })).jobs.length, 24);
      assert.equal((await queue.list({ status: ['cancelled'], limit: 100 })).jobs.length, 1);
      assert.equal((await queue.list({ status: 'pending', agent: 'even', owner: 'bob', limit: 100 })).jobs.length, 8);
      await assert.rejects(queue.list({ status: 'sleeping' }), (e: ValidationError) => e.field === 'status');
      await assert.rejects(queue.list({ limit: 0 }), (e: ValidationError) => e.field === 'limit');
      // Filter values are bound, never spliced into SQL.
      assert.equal((await queue.list({ agent: "x' OR '1'='1", limit: 100 })).jobs.length, 0);
    });

    it('cancels pending jobs at once and refuses to cancel finished ones', async () => {
      const { queue } = await freshQueue(engine);
      const job = await queue.submit({ agent: 'a' });
      const cancelled = await queue.cancel(job.id, { reason: 'changed my mind' });
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.error?.message, 'changed my mind');
      assert.ok(cancelled.finishedAt);
      assert.equal((await queue.cancel(job.id)).status, 'cancelled', 'cancelling twice is harmless');
      await assert.rejects(queue.cancel('0000000000000000000000NONE'), NotFoundError);
    });

    it('waits for a job to finish, or gives up with a timeout error', async () => {
      const { queue, url } = await freshQueue(engine);
      const job = await queue.submit({ agent: 'a' });
      await assert.rejects(
        queue.wait(job.id, { timeoutMs: 30, pollMs: 10 }),
        (e: WaitTimeoutError) => e instanceof WaitTimeoutError && e.status === 408 && e.details?.status === 'pending',
      );
      const waiting = queue.wait(job.id.slice(0, 20));
      const other = await Queue.open(url);
      await other.cancel(job.id);
      await other.close();
      assert.equal((await waiting).status, 'cancelled');
    });

    it('retries failed and cancelled jobs only', async () => {
      const { queue } = await freshQueue(engine);
      const job = await queue.submit({ agent: 'a', maxAttempts: 1 });
      await assert.rejects(queue.retry(job.id), (e: ConflictError) => e.status === 409 && /pending/.test(e.message));
      await queue.cancel(job.id);
      const retried = await queue.retry(job.id);
      assert.equal(retried.status, 'pending');
      assert.equal(retried.error, null);
      assert.equal(retried.finishedAt, null);
    });

    it('keeps finished jobs as history until cleanup, which can dry-run first', async () => {
      const clock = new ManualClock();
      const { queue } = await freshQueue(engine, { clock });
      const old = await queue.submit({ agent: 'a' });
      await queue.cancel(old.id);
      clock.advance(10 * 86_400_000);
      const recent = await queue.submit({ agent: 'a' });
      await queue.cancel(recent.id);
      const open = await queue.submit({ agent: 'a' });

      const dry = await queue.cleanup({ olderThanMs: 5 * 86_400_000, dryRun: true });
      assert.deepEqual(dry, { dryRun: true, count: 1, ids: [old.id] });
      assert.equal((await queue.stats()).total, 3);
      assert.equal((await queue.cleanup({ olderThanMs: 5 * 86_400_000, status: 'completed' })).count, 0);

      const done = await queue.cleanup({ olderThanMs: 5 * 86_400_000 });
      assert.deepEqual(done.ids, [old.id]);
      await assert.rejects(queue.get(old.id), NotFoundError);
      assert.equal((await queue.get(recent.id)).status, 'cancelled');
      assert.equal((await queue.get(open.id)).status, 'pending');
      await assert.rejects(queue.cleanup({ status: 'running' }), (e: ValidationError) => e.field === 'status');
    });

    it('counts jobs per status and per agent', async () => {
      const { queue } = await freshQueue(engine);
      await queue.submitMany([{ agent: 'a' }, { agent: 'a' }, { agent: 'b' }]);
      const b = (await queue.list({ agent: 'b' })).jobs[0];
      await queue.cancel(b.id);
      const stats = await queue.stats();
      assert.equal(stats.total, 3);
      assert.equal(stats.byStatus.pending, 2);
      assert.equal(stats.byStatus.cancelled, 1);
      assert.equal(stats.byAgent.a.pending, 2);
      assert.equal(stats.byAgent.b.cancelled, 1);
      assert.equal(stats.byAgent.b.total, 1);
    });

    it('blocks a job until its dependencies complete, and cancels it when one is cancelled', async () => {
      const { queue } = await freshQueue(engine);
      const first = await queue.submit({ agent: 'a' });
      const second = await queue.submit({ agent: 'a' });
      const dependent = await queue.submit({ agent: 'a', dependsOn: [first.id, second.id] });
      const grandchild = await queue.submit({ agent: 'a', dependsOn: [dependent.id] });
      assert.equal(dependent.status, 'blocked');
      await queue.cancel(second.id);
      const after = await queue.get(dependent.id);
      assert.equal(after.status, 'cancelled');
      assert.equal(after.error?.code, 'dependency_failed');
      assert.match(after.error!.message, new RegExp(second.id));
      assert.equal((await queue.get(grandchild.id)).status, 'cancelled', 'cancellation runs down the chain');
      assert.equal((await queue.get(first.id)).status, 'pending');
      const late = await queue.submit({ agent: 'a', dependsOn: [second.id] });
      assert.equal(late.status, 'cancelled', 'a job that depends on a cancelled job is cancelled at submit');
    });
  });
});
