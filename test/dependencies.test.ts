/** Dependencies between jobs, graphs submitted at once, and delegation trees. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Queue, ValidationError, type Handlers, type Job } from '../src/index.ts';
import { forEachEngine, freshQueue } from './helpers/engines.ts';
import { deferred, settled, waitFor } from './helpers/wait.ts';
import { finished, startWorker } from './helpers/workers.ts';

forEachEngine((engine) => {
  describe(`dependencies and delegation [${engine.name}]`, () => {
    it('runs a chain and a diamond in dependency order', async () => {
      const { queue } = await freshQueue(engine);
      const order: string[] = [];
      const worker = await startWorker(queue, { w: (job) => void order.push(job.payload as string) }, { concurrency: 4 });
      // Submitted in reverse so that submission order cannot explain the run order.
      const [d, c, b, a] = await queue.submitGraph([
        { ref: 'd', agent: 'w', payload: 'd', dependsOn: ['b', 'c'] },
        { ref: 'c', agent: 'w', payload: 'c', dependsOn: ['a'] },
        { ref: 'b', agent: 'w', payload: 'b', dependsOn: ['a'] },
        { ref: 'a', agent: 'w', payload: 'a' },
      ]);
      assert.deepEqual([a.status, b.status, c.status, d.status], ['pending', 'blocked', 'blocked', 'blocked']);
      assert.deepEqual(d.dependsOn, [b.id, c.id], 'refs become ids');
      const chain = await queue.submitGraph([
        { ref: 'x', agent: 'w', payload: 'x' },
        { ref: 'y', agent: 'w', payload: 'y', dependsOn: ['x'] },
        { ref: 'z', agent: 'w', payload: 'z', dependsOn: ['y'] },
      ]);
      for (const job of [d, chain[2]]) assert.equal((await finished(queue, job.id)).status, 'completed');
      const at = (name: string) => order.indexOf(name);
      assert.ok(at('a') < at('b') && at('a') < at('c') && at('b') < at('d') && at('c') < at('d'), order.join(''));
      assert.ok(at('x') < at('y') && at('y') < at('z'), order.join(''));
      assert.equal(order.length, 7, 'each job ran once');
      await worker.stop();
    });

    it('retries a job that others depend on or that has a parent, and then runs its dependents', async () => {
      const { queue } = await freshQueue(engine);
      const tries = new Map<string, number>();
      const [first, second] = await queue.submitGraph([
        { ref: 'first', agent: 'w', payload: 'first', backoff: { delayMs: 0, jitter: false } },
        { ref: 'second', agent: 'w', payload: 'second', dependsOn: ['first'] },
      ]);
      const parent = await queue.submit({ agent: 'w', payload: 'parent' });
      const child = await queue.submit({ agent: 'w', payload: 'child', parentId: parent.id, backoff: { delayMs: 0, jitter: false } });
      // Long leases: a retry that was not recorded would leave the job running past the wait below.
      const worker = await startWorker(
        queue,
        {
          w: (job) => {
            const n = (tries.get(job.payload as string) ?? 0) + 1;
            tries.set(job.payload as string, n);
            if ((job.payload === 'first' || job.payload === 'child') && n === 1) throw new Error('flaky once');
            return n;
          },
        },
        { leaseMs: 120_000 },
      );
      for (const job of [first, second, child]) assert.equal((await finished(queue, job.id)).status, 'completed', job.payload as string);
      assert.deepEqual([(await queue.get(first.id)).attempts, (await queue.get(child.id)).attempts], [2, 2]);
      assert.equal((await queue.get(second.id)).result, 1);
      await worker.stop();
    });

    it('runs a job with 50 dependencies exactly once when they complete at the same moment on different workers', async () => {
      const { queue, url } = await freshQueue(engine);
      const gate = deferred();
      let started = 0;
      const runs: string[] = [];
      const handlers: Handlers = {
        dep: async () => {
          started++;
          await gate.promise;
        },
        join: (job) => void runs.push(job.id),
      };
      const deps = await queue.submitMany(Array.from({ length: 50 }, () => ({ agent: 'dep' })));
      const join = await queue.submit({ agent: 'join', dependsOn: deps.map((d) => d.id) });
      // Four workers, each on its own connection, as separate processes would be.
      const queues = [queue, ...(await Promise.all([1, 2, 3].map(() => Queue.open(url))))];
      const workers = await Promise.all(queues.map((q) => startWorker(q, handlers, { concurrency: 13 })));
      await waitFor(() => started === 50, { what: 'all 50 dependencies to be running' });
      gate.resolve();
      const done = await finished(queue, join.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.attempts, 1);
      await Promise.all(workers.map((w) => w.stop()));
      assert.deepEqual(runs, [join.id], 'the fan-in job ran exactly once');
      for (const q of queues.slice(1)) await q.close();
    });

    it('cancels dependents transitively when a dependency fails, naming it', async () => {
      const { queue } = await freshQueue(engine);
      const worker = await startWorker(queue, {
        bad: () => {
          throw new Error('boom');
        },
        ok: () => 'fine',
      });
      const [bad, mid, leaf, other] = await queue.submitGraph([
        { ref: 'bad', agent: 'bad', maxAttempts: 1 },
        { ref: 'mid', agent: 'ok', dependsOn: ['bad'] },
        { ref: 'leaf', agent: 'ok', dependsOn: ['mid'] },
        { ref: 'other', agent: 'ok' },
      ]);
      assert.equal((await finished(queue, bad.id)).status, 'failed');
      const m = await queue.get(mid.id);
      const l = await queue.get(leaf.id);
      assert.equal(m.status, 'cancelled');
      assert.equal(m.error?.code, 'dependency_failed');
      assert.match(m.error!.message, new RegExp(`${bad.id} failed`));
      assert.equal(l.status, 'cancelled');
      assert.match(l.error!.message, new RegExp(`${mid.id} was cancelled`));
      assert.equal((await finished(queue, other.id)).status, 'completed', 'unrelated jobs run on');
      await worker.stop();
    });

    it('refuses cycles, duplicate refs, unknown ids and other owners\' jobs, storing nothing', async () => {
      const { queue } = await freshQueue(engine);
      const theirs = await queue.submit({ agent: 'w', owner: 'bob' });
      const before = (await queue.stats()).total;
      const refused: Array<[string, Parameters<Queue['submitGraph']>[0], RegExp]> = [
        ['a→a', [{ ref: 'a', agent: 'w', dependsOn: ['a'] }], /cycle: a → a/],
        [
          'a→b→a',
          [
            { ref: 'a', agent: 'w', dependsOn: ['b'] },
            { ref: 'b', agent: 'w', dependsOn: ['a'] },
          ],
          /cycle: a → b → a/,
        ],
        [
          'three-cycle',
          [
            { ref: 'ok', agent: 'w' },
            { ref: 'a', agent: 'w', dependsOn: ['ok', 'c'] },
            { ref: 'b', agent: 'w', dependsOn: ['a'] },
            { ref: 'c', agent: 'w', dependsOn: ['b'] },
          ],
          /cycle: a → c → b → a/,
        ],
        [
          'parent cycle',
          [
            { ref: 'p', agent: 'w', parentId: 'q' },
            { ref: 'q', agent: 'w', parentId: 'p' },
          ],
          /cycle/,
        ],
        [
          'duplicate ref',
          [
            { ref: 'a', agent: 'w' },
            { ref: 'a', agent: 'w' },
          ],
          /refs must be unique/,
        ],
        [
          'unknown id',
          [
            { ref: 'a', agent: 'w' },
            { ref: 'b', agent: 'w', dependsOn: ['a', '01NOSUCHJOB0000000000000000'] },
          ],
          /no job with id 01NOSUCHJOB/,
        ],
        ['another owner', [{ ref: 'a', agent: 'w', owner: 'ann', dependsOn: [theirs.id] }], new RegExp(`no job with id ${theirs.id}`)],
        ['another owner\'s parent', [{ ref: 'a', agent: 'w', owner: 'ann', parentId: theirs.id }], /parentId: no job with id/],
        ['bad field', [{ ref: 'a', agent: 'w' }, { ref: 'b', agent: 'w', maxAttempts: 0 }], /^1\.maxAttempts/],
      ];
      for (const [name, graph, message] of refused) {
        await assert.rejects(queue.submitGraph(graph), (e: Error) => e instanceof ValidationError && message.test(e.message), name);
      }
      assert.equal((await queue.stats()).total, before, 'nothing stored');
      // The same owner's job, or any job for a job without an owner, is fine.
      const mine = await queue.submitGraph([{ ref: 'a', agent: 'w', owner: 'bob', dependsOn: [theirs.id] }]);
      assert.equal(mine[0].status, 'blocked');
      await assert.rejects(
        queue.submit({ agent: 'w', owner: 'ann', dependsOn: [theirs.id] }),
        (e: ValidationError) => e.field === 'dependsOn.0',
      );
    });

    it('lets a parent wait for its children without holding a slot, then resume with their results', async () => {
      const { queue } = await freshQueue(engine);
      const runs: number[] = [];
      const seenWaiting = deferred<Job>();
      const worker = await startWorker(
        queue,
        {
          lead: async (job, ctx) => {
            runs.push(ctx.attempt);
            const children = await ctx.children();
            if (children.length === 0) {
              for (const n of [1, 2, 3]) await ctx.spawn({ agent: 'square', payload: n });
              return ctx.waitForChildren();
            }
            return children.reduce((sum, c) => sum + (c.result as number), 0);
          },
          square: async (job) => {
            // The parent is parked while its children run (its slot is free once its handler
            // returned, so a child may start while the parking is still being written).
            const parent = await waitFor(async () => {
              const p = await queue.get(job.parentId!);
              return p.status === 'waiting' ? p : null;
            }, { what: 'the parent to be parked' });
            seenWaiting.resolve(parent);
            return (job.payload as number) ** 2;
          },
        },
        // One slot: the children can only run if the waiting parent gave its slot up.
        { concurrency: 1 },
      );
      const lead = await queue.submit({ agent: 'lead' });
      const done = await finished(queue, lead.id);
      assert.equal(done.status, 'completed');
      assert.equal(done.result, 1 + 4 + 9);
      assert.equal(done.attempts, 1, 'waiting does not spend an attempt');
      assert.deepEqual(runs, [1, 1]);
      const parked = await settled(seenWaiting.promise, 'the parent to be seen waiting');
      assert.equal(parked.workerId, null, 'a waiting job holds no lease');
      const tree = await queue.tree(lead.id);
      assert.deepEqual(
        tree.children.map((c) => [c.job.payload, c.job.result, c.job.status]),
        [
          [1, 1, 'completed'],
          [2, 4, 'completed'],
          [3, 9, 'completed'],
        ],
      );
      await worker.stop();
    });

    it('resumes a waiting parent at once when its children had already finished, and when one fails', async () => {
      const { queue } = await freshQueue(engine);
      const worker = await startWorker(queue, {
        lead: async (job, ctx) => {
          const children = await ctx.children();
          if (children.length === 0) {
            const child = await ctx.spawn({ agent: (job.payload as string) ?? 'quick', maxAttempts: 1 });
            await finished(queue, child.id);
            return ctx.waitForChildren();
          }
          return children.map((c) => c.status);
        },
        quick: () => 'done',
        broken: () => {
          throw new Error('child broke');
        },
      }, { concurrency: 4 });
      const early = await queue.submit({ agent: 'lead', payload: 'quick' });
      const failing = await queue.submit({ agent: 'lead', payload: 'broken' });
      assert.deepEqual((await finished(queue, early.id)).result, ['completed']);
      assert.deepEqual((await finished(queue, failing.id)).result, ['failed'], 'the parent decides what a failed child means');
      await worker.stop();
    });

    it('cancels a parent with its unfinished descendants, or alone', async () => {
      const { queue } = await freshQueue(engine);
      const root = await queue.submit({ agent: 'w' });
      const [child, done, grandchild, dependent] = await queue.submitGraph([
        { ref: 'child', agent: 'w', parentId: root.id },
        { ref: 'done', agent: 'w', parentId: root.id },
        { ref: 'grandchild', agent: 'w', parentId: 'child' },
        { ref: 'dependent', agent: 'other', dependsOn: ['grandchild'] },
      ]);
      // One child finished before the cancel: it stays as it is.
      const other = await queue.submit({ agent: 'w', parentId: root.id });
      await queue.cancel(done.id);
      await queue.cancel(other.id);
      await queue.retry(other.id);
      const alone = await queue.submit({ agent: 'w' });
      const aloneChild = await queue.submit({ agent: 'w', parentId: alone.id });
      await queue.cancel(alone.id);
      assert.equal((await queue.get(aloneChild.id)).status, 'pending', 'without descendants, children run on');

      await queue.cancel(root.id, { descendants: true });
      for (const id of [child.id, grandchild.id, other.id]) {
        const job = await queue.get(id);
        assert.equal(job.status, 'cancelled', id);
        assert.equal(job.error?.code, 'parent_cancelled');
        assert.match(job.error!.message, new RegExp(root.id));
      }
      assert.equal((await queue.get(dependent.id)).status, 'cancelled', 'dependents of a cancelled descendant too');
      assert.equal((await queue.get(done.id)).error?.code, 'cancelled', 'finished children keep their own outcome');
    });

    it('builds the delegation tree of a job', async () => {
      const { queue } = await freshQueue(engine);
      const [root, a, b, a1] = await queue.submitGraph([
        { ref: 'root', agent: 'lead' },
        { ref: 'a', agent: 'w', parentId: 'root' },
        { ref: 'b', agent: 'w', parentId: 'root', dependsOn: ['a'] },
        { ref: 'a1', agent: 'w', parentId: 'a' },
      ]);
      const tree = await queue.tree(root.id.toLowerCase());
      assert.equal(tree.job.id, root.id);
      assert.deepEqual(
        tree.children.map((c) => [c.job.id, c.children.map((g) => g.job.id)]),
        [
          [a.id, [a1.id]],
          [b.id, []],
        ],
      );
      assert.deepEqual(tree.children[1].job.dependsOn, [a.id]);
      assert.equal((await queue.tree(root.id, { maxDepth: 1 })).children[0].children.length, 0);
    });
  });
});
