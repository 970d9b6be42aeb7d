/** The job, event and schedule commands through a server: --server URL --token T, run as the real binary. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { agentq, BIN, freshDb, start, type Running } from './run.ts';

describe('agentq commands through --server', () => {
  let server: Running;
  let url = '';
  let token = '';
  let db = '';
  // Another database path: the remote commands must not touch a local one.
  const elsewhere = join(dirname(freshDb()), 'not-used.db');
  const remote = (args: readonly string[], t = token) => agentq(elsewhere, ['--server', url, '--token', t, ...args], { noDb: true });
  const remoteJson = async (args: readonly string[]) => {
    const r = await remote([...args, '--json']);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    db = freshDb();
    server = start(db, ['serve', '--port', '0']);
    await server.output(/Press Ctrl\+C to stop/, 'the banner');
    token = /\b(aq_[A-Za-z0-9_-]+)/.exec(server.stdout())![1];
    url = /(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(server.stdout())![1];
  });
  after(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
  });

  it('submits and waits, lists, shows, logs, trees, cancels, retries and counts through the API', async () => {
    const done = await remoteJson(['submit', '-a', 'demo', '--payload', '{"steps":2,"stepMs":20}', '--wait']);
    assert.equal(done.status, 'completed');
    assert.equal(done.owner, 'admin');
    const listed = await remoteJson(['jobs', '-s', 'completed']);
    assert.ok(listed.jobs.some((j: { id: string }) => j.id === done.id));
    assert.equal((await remoteJson(['info', done.id.slice(0, 14)])).id, done.id);
    const logs = await remote(['logs', done.id]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /step 1/);
    const tree = await remote(['tree', done.id]);
    assert.match(tree.stdout, /demo/);
    const blocked = await remoteJson(['submit', '-a', 'nobody', '--depends-on', done.id, '--delay', '1h']);
    assert.equal((await remoteJson(['cancel', blocked.id])).status, 'cancelled');
    assert.equal((await remoteJson(['retry', blocked.id])).status, 'pending');
    const status = await remoteJson(['status']);
    assert.ok(status.stats.total >= 2);
    assert.equal((await remoteJson(['hung'])).jobs.length, 0);
    assert.equal((await remoteJson(['cleanup', '--dry-run', '-d', '0'])).dryRun, true);
  });

  it('publishes and reads events, and applies and runs schedules', async () => {
    const event = await remoteJson(['events', 'publish', 'app.hello', '--payload', '{"x":1}']);
    assert.equal(event.type, 'app.hello');
    const tail = await remote(['events', 'tail', 'app.*', '--after', '0', '--no-follow', '--json']);
    assert.equal(tail.code, 0, tail.stderr);
    assert.ok(tail.stdout.includes('"app.hello"'));
    const file = join(dirname(db), 'tasks.yaml');
    writeFileSync(file, 'schedules:\n  - name: hourly\n    interval: 1 hour\n    agent: echo\n');
    const applied = await remoteJson(['schedules', 'apply', file]);
    assert.deepEqual(applied.created, ['hourly']);
    assert.equal((await remoteJson(['schedules', 'disable', 'hourly'])).enabled, false);
    const ran = await remoteJson(['schedules', 'run', 'hourly']);
    assert.equal(ran.agent, 'echo');
    const list = await remoteJson(['schedules', 'list']);
    assert.equal(list[0]?.name ?? list.schedules?.[0]?.name, 'hourly');
  });

  it('manages users through the server (admins), and a user may not', async () => {
    const added = await remoteJson(['users', 'add', 'remote-user']);
    assert.equal(added.user.name, 'remote-user');
    assert.match(added.token, /^aq_/);
    const listed = await remoteJson(['users', 'list']);
    assert.ok(listed.some((u: { name: string; tokens: number }) => u.name === 'remote-user' && u.tokens === 1));
    const mine = await remote(['jobs'], added.token);
    assert.equal(mine.code, 0, mine.stderr);
    const refused = await remote(['users', 'list'], added.token);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /admin/);
    assert.equal((await remoteJson(['users', 'revoke', 'remote-user'])).revoked, 1);
    assert.equal((await remote(['jobs'], added.token)).code, 1);
    assert.equal((await remote(['users', 'remove', 'remote-user'])).code, 0);
  });

  it('serves MCP tools through the server, as the token’s user', async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, '--server', url, '--token', token, 'mcp'], stderr: 'pipe' });
    const client = new Client({ name: 'agentq-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const text = (r: unknown) => JSON.parse((r as { content: Array<{ text: string }> }).content[0].text);
      const submitted = text(await client.callTool({ name: 'submit_job', arguments: { instructions: 'through the API', agent_name: 'echo' } }));
      const id = submitted.id ?? submitted.job_id ?? submitted.job?.id;
      assert.ok(id, JSON.stringify(submitted));
      const done = text(await client.callTool({ name: 'wait_for_job', arguments: { job_id: id, timeout_seconds: 20 } }));
      assert.match(JSON.stringify(done), /completed/);
      const bad = await client.callTool({ name: 'get_job_status', arguments: { job_id: '01NOPE' } });
      assert.equal(bad.isError, true);
    } finally {
      await client.close();
    }
  });

  it('says what is wrong: a bad token, no token, an unreachable server, and commands that need a database', async () => {
    const bad = await remote(['jobs'], 'aq_wrong-token-000000');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /token is unknown or revoked/);
    const none = await agentq(elsewhere, ['--server', url, 'jobs'], { noDb: true });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /needs a token/);
    const away = await agentq(elsewhere, ['--server', 'http://127.0.0.1:1', '--token', token, 'jobs'], { noDb: true });
    assert.equal(away.code, 1);
    assert.match(away.stderr, /cannot reach the agentq server at http:\/\/127\.0\.0\.1:1/);
    for (const command of [['worker'], ['migrate'], ['scheduler']]) {
      const r = await remote(command);
      assert.equal(r.code, 2, command.join(' '));
      assert.match(r.stderr, /works on a database, not through --server/);
    }
    const field = await remote(['submit', '-a', 'demo', '--priority', '1.5']);
    assert.equal(field.code, 2);
  });
});
