/** Workers started from the CLI: running jobs, following them, and stopping gracefully. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, start, submit, waitForJob } from './run.ts';

const FAST = ['--poll-interval', '100ms'];

describe('agentq worker, serve, logs -f, submit --wait', { concurrency: true }, () => {
  it('runs submitted jobs, narrates them, shows in status, and logs what they logged', async () => {
    const db = freshDb();
    const worker = start(db, ['worker', '--agent', 'echo', ...FAST]);
    await worker.output(/serving echo/, 'the worker banner');
    const id = await submit(db, ['-a', 'echo', '--payload', '{"hello":"world"}']);
    const done = await waitForJob(db, id, (j) => j.status === 'completed', 'the echo job to complete');
    assert.deepEqual(done.result, { hello: 'world' });
    await worker.output(new RegExp(`${id.slice(0, 12)} echo completed in`), 'the completion line');
    assert.match(worker.stdout(), new RegExp(`${id.slice(0, 12)} echo started \\(attempt 1 of 3\\)`));

    const { workers } = await agentqJson(db, ['status']);
    assert.equal(workers.length, 1);
    assert.deepEqual(workers[0].agents, ['echo']);
    assert.equal(workers[0].pid, worker.child.pid);
    const listed = await agentq(db, ['worker', '--status']);
    assert.equal(listed.code, 0);
    assert.match(listed.stdout, /^NAME\s+PID\s+AGENTS\s+RUNNING\s+STARTED\s+HEARTBEAT$/m);
    assert.match(listed.stdout, new RegExp(`\\b${worker.child.pid}\\s+echo\\s+0/10\\b`));

    const logs = await agentqJson(db, ['logs', id]);
    assert.equal(logs.length, 1);
    assert.equal(logs[0].message, 'echo');
    assert.deepEqual(logs[0].data, { hello: 'world' });
    const human = await agentq(db, ['logs', id.slice(0, 20)]);
    assert.match(human.stdout, /^\d\d:\d\d:\d\d\.\d{3} INFO  echo \{"hello":"world"\}$/m);

    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /SIGTERM received — stopping/);
    assert.equal((await agentqJson(db, ['status'])).workers.length, 0, 'a stopped worker deregisters');
  });

  it('takes --prefetch 0 to claim only for free slots, and refuses a bad --prefetch with exit 2', async () => {
    const db = freshDb();
    for (const bad of ['-1', 'many', '1.5']) {
      const r = await agentq(db, ['worker', '--prefetch', bad]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--prefetch.*expected an integer from 0 to 1000000/);
      assert.doesNotMatch(r.stdout + r.stderr, /serving/);
    }
    const worker = start(db, ['worker', '--agent', 'echo', '--prefetch', '0', ...FAST]);
    await worker.output(/serving echo/, 'the worker banner');
    const id = await submit(db, ['-a', 'echo', '--payload', '"hi"']);
    assert.equal((await waitForJob(db, id, (j) => j.status === 'completed', 'the echo job to complete')).result, 'hi');
    worker.child.kill('SIGTERM');
    assert.equal((await worker.exited).code, 0);
  });

  it('submit --wait exits 0 when the job completed and 1 when it failed; handlers come from --handlers', async () => {
    const db = freshDb();
    const module = join(dirname(db), 'agents.mjs');
    writeFileSync(
      module,
      `export default { shout: (job) => String(job.payload).toUpperCase() };
       export function boom() { throw new Error('kaboom'); }
       export const notAHandler = 42;`,
    );
    const worker = start(db, ['worker', '--handlers', module, ...FAST]);
    await worker.output(/serving shout, boom, echo, demo|serving .*shout/, 'the worker banner');
    assert.match(worker.stderr(), /serving (?=.*shout)(?=.*boom)(?=.*echo)(?=.*demo)/, 'serves its handlers plus the demo agents');

    const ok = await agentq(db, ['submit', '-a', 'shout', '--payload', '"hi"', '--wait']);
    assert.equal(ok.code, 0, ok.stderr);
    const [id, status] = ok.stdout.split('\n');
    assert.match(id, /^[0-9A-Z]{26}$/);
    assert.match(status, new RegExp(`^${id} completed in \\d`));
    assert.match(ok.stdout, /"HI"/);

    const bad = await agentq(db, ['submit', '-a', 'boom', '--max-attempts', '1', '--wait', '--json']);
    assert.equal(bad.code, 1);
    const failed = JSON.parse(bad.stdout);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error.message, 'kaboom');

    worker.child.kill('SIGINT');
    assert.equal((await worker.exited).code, 0);
  });

  it('logs -f prints lines as they come and exits when the job has finished', async () => {
    const db = freshDb();
    const id = await submit(db, ['-a', 'demo', '--payload', '{"steps":4,"stepMs":150}']);
    const follow = start(db, ['logs', id, '-f']);
    const json = start(db, ['logs', id, '-f', '--json']);
    const worker = start(db, ['worker', '--agent', 'demo', ...FAST]);
    await follow.output(/step 1 of 4/, 'the first step');
    assert.doesNotMatch(follow.stdout(), /step 4 of 4/, 'lines are printed as they come, not at the end');
    const [f, j] = await Promise.all([follow.exited, json.exited]);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(
      f.stdout.trimEnd().split('\n').map((l) => l.replace(/^\S+ INFO  /, '').replace(/ \{.*\}$/, '')),
      ['step 1 of 4', 'step 2 of 4', 'step 3 of 4', 'step 4 of 4'],
    );
    assert.match(f.stderr, /job completed/);
    assert.equal(j.code, 0);
    const lines = j.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.data), [{ step: 1 }, { step: 2 }, { step: 3 }, { step: 4 }]);
    worker.child.kill('SIGTERM');
    assert.equal((await worker.exited).code, 0);
  });

  it('on SIGTERM lets a running job finish within the grace period, then exits 0', async () => {
    const db = freshDb();
    const worker = start(db, ['worker', '--agent', 'demo', ...FAST]);
    const id = await submit(db, ['-a', 'demo', '--payload', '{"steps":15,"stepMs":100}']);
    await worker.output(new RegExp(`${id.slice(0, 12)} demo started`), 'the demo job to start');
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stderr, /SIGTERM received — stopping: waiting up to 10s for 1 running job/);
    assert.match(exit.stderr, /worker stopped/);
    const job = await agentqJson(db, ['info', id]);
    assert.equal(job.status, 'completed');
  });

  it('on SIGTERM hands back a job that outlasts the grace period; a second signal exits at once', async () => {
    const db = freshDb();
    const worker = start(db, ['worker', '--agent', 'demo', '--grace', '100ms', ...FAST]);
    const id = await submit(db, ['-a', 'demo', '--payload', '{"steps":100,"stepMs":100}']);
    await worker.output(new RegExp(`${id.slice(0, 12)} demo started`), 'the demo job to start');
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, exit.stderr);
    assert.match(exit.stdout, /handed back/);
    const job = await agentqJson(db, ['info', id]);
    assert.equal(job.status, 'pending', 'handed back, to run again');
    assert.equal(job.attempts, 0, 'the attempt is not spent');

    const stubborn = start(db, ['worker', '--agent', 'demo', '--grace', '1h', ...FAST]);
    await stubborn.output(new RegExp(`${id.slice(0, 12)} demo started`), 'the demo job to start again');
    stubborn.child.kill('SIGINT');
    await stubborn.output(/SIGINT received/, 'the first signal to be heard');
    stubborn.child.kill('SIGINT');
    const forced = await stubborn.exited;
    assert.equal(forced.code, 1);
    assert.match(forced.stderr, /SIGINT again — exiting now/);
  });

  it('kill stops a running job: its handler is aborted and the job is cancelled', async () => {
    const db = freshDb();
    const worker = start(db, ['worker', '--agent', 'demo', ...FAST]);
    const id = await submit(db, ['-a', 'demo', '--payload', '{"steps":100,"stepMs":100}']);
    await worker.output(new RegExp(`${id.slice(0, 12)} demo started`), 'the demo job to start');
    const killed = await agentq(db, ['kill', id]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.match(killed.stdout, new RegExp(`^killed ${id} — now cancelled$`, 'm'));
    await worker.output(new RegExp(`${id.slice(0, 12)} demo cancelled`), 'the worker to drop the job');
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0);
    assert.doesNotMatch(exit.stderr, /waiting up to/, 'nothing was left running');
  });

  it('serve prints a banner with the database and an example, runs demo jobs, and stops on SIGINT', async () => {
    const db = freshDb();
    const server = start(db, ['serve', '--port', '0']);
    await server.output(/Press Ctrl\+C to stop/, 'the banner');
    const banner = server.stdout();
    assert.ok(banner.includes(db), 'names the database');
    assert.match(banner, /agentq submit --agent demo --wait --db /);
    assert.match(banner, /agents\s+echo, demo/);
    const r = await agentq(db, ['submit', '-a', 'demo', '--payload', '{"steps":2,"stepMs":50}', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).status, 'completed');
    server.child.kill('SIGINT');
    const exit = await server.exited;
    assert.equal(exit.code, 0, exit.stderr);
  });
});
