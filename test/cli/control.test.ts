/** Steering jobs from the CLI: cancel, kill, retry, wait, hung, cleanup. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ManualClock, Queue } from '../../src/index.ts';
import { agentq, agentqJson, freshDb, openQueue, submit } from './run.ts';

/** Makes one pending job of `agent` running, as a worker that then goes silent would. */
async function claim(queue: Queue, agent: string): Promise<string> {
  const [job] = await queue.store.claimJobs({ workerId: 'silent-worker', agents: [agent], limit: 1, leaseMs: 3_600_000 });
  assert.ok(job, `a pending ${agent} job to claim`);
  return job.id;
}

describe('agentq cancel, kill, retry, wait, hung, cleanup', { concurrency: true }, () => {
  it('cancels a job, retries it, and refuses what the state machine does not allow', async () => {
    const db = freshDb();
    const id = await submit(db, ['-a', 'x']);
    const dependent = await submit(db, ['-a', 'y', '--depends-on', id]);

    const cancelled = await agentqJson(db, ['cancel', id.slice(0, 20), '--reason', 'changed my mind']);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.error.message, 'changed my mind');
    assert.equal((await agentqJson(db, ['info', dependent])).status, 'cancelled', 'dependents are cancelled too');

    const human = await agentq(db, ['cancel', id]);
    assert.equal(human.code, 0, 'cancelling a cancelled job is a no-op');
    assert.match(human.stdout, new RegExp(`${id}.*cancelled`));

    const retried = await agentqJson(db, ['retry', id]);
    assert.equal(retried.status, 'pending');
    assert.equal(retried.error, null);

    const again = await agentq(db, ['retry', id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^agentq: job \S+ is pending; only failed or cancelled jobs can be retried — /);

    const notRunning = await agentq(db, ['kill', id]);
    assert.equal(notRunning.code, 1);
    assert.match(notRunning.stderr, /is pending, not running — cancel it with: agentq cancel/);
  });

  it('refuses to cancel a completed job (exit 1) and kills a running one', async () => {
    const db = freshDb();
    const done = await submit(db, ['-a', 'x']);
    const running = await submit(db, ['-a', 'x']);
    const queue = await openQueue(db);
    const [job] = await queue.store.claimJobs({ workerId: 'w', agents: ['x'], limit: 1, leaseMs: 60_000 });
    assert.equal(job.id, done);
    await queue.store.finishJobs([{ kind: 'complete', lease: { id: done, workerId: 'w', attempt: 1 }, result: '"ok"' }]);
    const conflict = await agentq(db, ['cancel', done]);
    assert.equal(conflict.code, 1);
    assert.match(conflict.stderr, /^agentq: job \S+ is already completed and cannot be cancelled — /);

    await claim(queue, 'x');
    const killed = await agentqJson(db, ['kill', running, '--force']);
    assert.equal(killed.status, 'cancelled');
    assert.match(killed.error.message, /force/);
  });

  it('waits for a job: exit 1 when the timeout runs out, 0 once it completed', async () => {
    const db = freshDb();
    const id = await submit(db, ['-a', 'x']);
    const late = await agentq(db, ['wait', id, '--timeout', '300ms']);
    assert.equal(late.code, 1);
    assert.match(late.stderr, /^agentq: job \S+ is still pending after 300ms — wait longer with --timeout/);

    const queue = await openQueue(db);
    await claim(queue, 'x');
    await queue.store.finishJobs([{ kind: 'complete', lease: { id, workerId: 'silent-worker', attempt: 1 }, result: '{"answer":42}' }]);
    const ok = await agentq(db, ['wait', id.slice(0, 20)]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^${id} completed`));
    assert.match(ok.stdout, /"answer": 42/);
    const json = await agentqJson(db, ['wait', id]);
    assert.deepEqual(json.result, { answer: 42 });

    const failed = await submit(db, ['-a', 'x']);
    await agentq(db, ['cancel', failed]);
    const bad = await agentq(db, ['wait', failed]);
    assert.equal(bad.code, 1, 'a cancelled job exits 1');
    assert.match(bad.stdout, /cancelled/);
  });

  it('lists hung jobs, then kills or requeues them', async () => {
    const db = freshDb();
    // a was claimed ten minutes ago by a worker that fell silent; b was claimed just now.
    const a = await submit(db, ['-a', 'stuck', '--run-at', '2020-01-01T00:00:00Z']);
    const b = await submit(db, ['-a', 'stuck']);
    const past = await Queue.open(db, { clock: new ManualClock(Date.now() - 600_000) });
    after(() => past.close());
    assert.equal(await claim(past, 'stuck'), a);
    const queue = await openQueue(db);
    assert.equal(await claim(queue, 'stuck'), b);

    const listed = await agentqJson(db, ['hung']);
    assert.deepEqual(listed.jobs.map((j: any) => j.id), [a], 'silent for more than 5 minutes (the default)');
    assert.deepEqual([listed.killed, listed.requeued], [[], []]);
    const both = await agentqJson(db, ['hung', '--timeout', '0s']);
    assert.deepEqual(both.jobs.map((j: any) => j.id), [a, b]);

    const human = await agentq(db, ['hung', '--timeout', '2m']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /^1 running job silent for more than 2m:/);
    assert.match(human.stdout, /^ID\s+AGENT\s+STATUS\s+HEARTBEAT\s+RUNNING\s+WORKER$/m);
    assert.match(human.stdout, new RegExp(`^${a.slice(0, 12)}\\s+stuck\\s+running\\s+10m ago\\s+10m( \\d+s)?\\s+silent-worker$`, 'm'));

    const killed = await agentqJson(db, ['hung', '--kill']);
    assert.deepEqual(killed.killed, [a]);
    assert.equal((await agentqJson(db, ['info', a])).status, 'cancelled');
    assert.equal((await agentqJson(db, ['info', b])).status, 'running');

    const requeued = await agentq(db, ['hung', '--timeout', '0s', '--requeue']);
    assert.equal(requeued.code, 0);
    assert.match(requeued.stdout, new RegExp(`^requeued ${b}$`, 'm'));
    const again = await agentqJson(db, ['info', b]);
    assert.equal(again.status, 'pending', 'requeued jobs run again');
    assert.equal(again.workerId, null);
  });

  it('cleans up finished jobs: --dry-run lists them, then they are deleted', async () => {
    const db = freshDb();
    const keep = await submit(db, ['-a', 'x']);
    const gone1 = await submit(db, ['-a', 'x']);
    const gone2 = await submit(db, ['-a', 'y']);
    await agentq(db, ['cancel', gone1]);
    await agentq(db, ['cancel', gone2]);

    const young = await agentqJson(db, ['cleanup']);
    assert.deepEqual(young, { dryRun: false, count: 0, ids: [] }, 'nothing is 30 days old');

    const dry = await agentqJson(db, ['cleanup', '-d', '0', '--dry-run']);
    assert.deepEqual(dry, { dryRun: true, count: 2, ids: [gone1, gone2].sort() });
    const human = await agentq(db, ['cleanup', '--days', '0', '--dry-run']);
    assert.match(human.stdout, /^Would delete 2 finished jobs older than 0 days:/);
    assert.ok(human.stdout.includes(gone1) && human.stdout.includes(gone2));
    assert.equal((await agentqJson(db, ['jobs'])).jobs.length, 3, 'a dry run deletes nothing');

    const onlyCompleted = await agentqJson(db, ['cleanup', '-d', '0', '-s', 'success']);
    assert.equal(onlyCompleted.count, 0);
    const real = await agentq(db, ['cleanup', '-d', '0', '-s', 'cancelled']);
    assert.equal(real.code, 0);
    assert.match(real.stdout, /^Deleted 2 finished jobs older than 0 days\.$/m);
    assert.deepEqual((await agentqJson(db, ['jobs'])).jobs.map((j: any) => j.id), [keep]);
    assert.equal((await agentq(db, ['info', gone1])).code, 1);
  });
});
