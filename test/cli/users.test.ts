/** `agentq users` and `agentq serve` with its REST API, run as the real binary. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, start } from './run.ts';

describe('agentq users and serve', { concurrency: true }, () => {
  it('adds users with a token shown once, lists them, makes and revokes tokens, removes them', async () => {
    const db = freshDb();
    const added = await agentqJson(db, ['users', 'add', 'alice', '--json']);
    assert.equal(added.user.role, 'user');
    assert.match(added.token, /^aq_/);
    const plain = await agentq(db, ['users', 'add', 'ops', '--admin']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout.trim(), /^aq_[A-Za-z0-9_-]+$/, 'stdout is the token alone');
    assert.match(plain.stderr, /shown this once/);
    const dup = await agentq(db, ['users', 'add', 'alice']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    const bad = await agentq(db, ['users', 'add', 'no spaces']);
    assert.equal(bad.code, 2);
    const second = await agentqJson(db, ['users', 'token', 'alice', '--json']);
    assert.notEqual(second.token, added.token);
    const list = await agentqJson(db, ['users', 'list', '--json']);
    assert.deepEqual(list.map((u: { name: string; role: string; tokens: number }) => [u.name, u.role, u.tokens]), [
      ['alice', 'user', 2],
      ['ops', 'admin', 1],
    ]);
    const table = await agentq(db, ['users']);
    assert.match(table.stdout, /alice\s+user\s+2/);
    assert.equal((await agentqJson(db, ['users', 'revoke', 'alice', second.tokenId, '--json'])).revoked, 1);
    assert.equal((await agentqJson(db, ['users', 'revoke', 'alice', '--json'])).revoked, 1);
    assert.equal((await agentq(db, ['users', 'token', 'nobody'])).code, 1);
    assert.equal((await agentq(db, ['users', 'remove', 'alice'])).code, 0);
    assert.equal((await agentqJson(db, ['users', 'list', '--json'])).length, 1);
  });

  it('serve adds an admin on first start, prints its token once, serves the API on 127.0.0.1 and stops on SIGTERM', async () => {
    const db = freshDb();
    const server = start(db, ['serve', '--port', '0']);
    await server.output(/Press Ctrl\+C to stop/, 'the banner');
    const out = server.stdout();
    const token = /\b(aq_[A-Za-z0-9_-]+)/.exec(out)?.[1];
    assert.ok(token, 'prints the admin token');
    const url = /api\s+(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(out)?.[1];
    assert.ok(url, `names the API address: ${out}`);
    const submitted = await fetch(`${url}/api/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'echo', payload: 'hello' }),
    });
    assert.equal(submitted.status, 202);
    const job = (await submitted.json()) as { id: string };
    const done = await agentqJson(db, ['wait', job.id, '--json']);
    assert.equal(done.status, 'completed');
    assert.equal((await fetch(`${url}/api/v1/jobs/${job.id}`)).status, 401);
    server.child.kill('SIGTERM');
    const exit = await server.exited;
    assert.equal(exit.code, 0, exit.stderr);
    // A second start finds the admin and prints no token.
    const again = start(db, ['serve', '--port', '0', '--no-worker']);
    await again.output(/Press Ctrl\+C to stop/, 'the second banner');
    assert.doesNotMatch(again.stdout(), /aq_/);
    assert.match(again.stdout(), /worker\s+none/);
    again.child.kill('SIGINT');
    assert.equal((await again.exited).code, 0);
  });
});
