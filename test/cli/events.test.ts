/** `agentq events publish | tail` and `agentq monitor`, run as the real binary. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, start, submit } from './run.ts';

describe('agentq events and monitor', { concurrency: true }, () => {
  it('publishes and lists events as JSON, and refuses a bad type with exit 2', async () => {
    const db = freshDb();
    const job = await submit(db, ['-a', 'demo']);
    const event = await agentqJson(db, ['events', 'publish', 'email.processed', '--payload', '{"id":42}', '--to', 'mailer']);
    assert.deepEqual([event.type, event.target, event.source, event.payload], ['email.processed', 'mailer', 'cli', { id: 42 }]);
    const tail = await agentq(db, ['events', 'tail', '--after', '0', '--no-follow', '--json']);
    assert.equal(tail.code, 0, tail.stderr);
    const lines = tail.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((e) => [e.type, e.jobId]), [
      ['job.created', job],
      ['email.processed', null],
    ]);
    const jobsOnly = await agentq(db, ['events', 'tail', 'job.*', '-n', '5', '--no-follow']);
    assert.match(jobsOnly.stdout, /job\.created\s+\S+\s+demo/);
    assert.doesNotMatch(jobsOnly.stdout, /email/);
    const bad = await agentq(db, ['events', 'publish', 'has space']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /must be dotted words/);
    const badJson = await agentq(db, ['events', 'publish', 'x.y', '--payload', '{nope']);
    assert.equal(badJson.code, 2);
    const after = await agentq(db, ['events', 'tail', '--after', '0', '--no-follow', '--json']);
    assert.equal(after.stdout.trim().split('\n').length, 2, 'nothing stored from bad input');
  });

  it('follows new events until stopped', async () => {
    const db = freshDb();
    await agentq(db, ['migrate']);
    const tail = start(db, ['events', 'tail', 'app.*']);
    // The first event may land before the tail starts; publish until one shows.
    let n = 0;
    const publishing = (async () => {
      while (!/app\.ping/.test(tail.stdout()) && n < 200) {
        await agentq(db, ['events', 'publish', 'app.ping', '--payload', String(n++)]);
      }
    })();
    await tail.output(/app\.ping/, 'the followed event');
    await publishing;
    tail.child.kill('SIGINT');
    const done = await tail.exited;
    assert.equal(done.code, 0, done.stderr);
  });

  it('shows a snapshot of the queue with --once, and redraws on change when followed', async () => {
    const db = freshDb();
    await submit(db, ['-a', 'demo', '-q', 'watch me']);
    const once = await agentq(db, ['monitor', '--once']);
    assert.equal(once.code, 0, once.stderr);
    assert.match(once.stdout, /Jobs\s+1 total · 1 pending/);
    assert.match(once.stdout, /Workers\s+none alive/);
    assert.match(once.stdout, /Latest events\n.*job\.created/);
    const live = start(db, ['monitor']);
    await live.output(/1 total/, 'the first snapshot');
    await submit(db, ['-a', 'demo']);
    await live.output(/2 total · 2 pending/, 'a redraw after the change');
    live.child.kill('SIGTERM');
    assert.equal((await live.exited).code, 0);
  });
});
