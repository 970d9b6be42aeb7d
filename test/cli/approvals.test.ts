/** Approval gates from the CLI and the REST API, with a real `agentq serve` running the gated agent. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, start, submit, waitForJob } from './run.ts';

const HANDLERS = `
export default {
  gate: async (job, ctx) => {
    const plan = await ctx.step('plan', () => ({ target: job.instructions }));
    const ok = await ctx.approval({ title: 'Ship ' + plan.target + '?', details: plan, expiresIn: '1h' });
    return { shipped: plan.target, by: ok.by, comment: ok.comment };
  },
};
`;

describe('agentq approvals', () => {
  it('lists, shows, approves and rejects from the CLI and the REST API; others get 404', async () => {
    const db = freshDb();
    const module = join(dirname(db), 'gate.mjs');
    writeFileSync(module, HANDLERS);
    const server = start(db, ['serve', '--port', '0', '--handlers', module]);
    try {
      await server.output(/Press Ctrl\+C to stop/, 'the banner');
      const admin = /\b(aq_[A-Za-z0-9_-]+)/.exec(server.stdout())![1];
      const url = /(http:\/\/127\.0\.0\.1:\d+)\/api\/v1/.exec(server.stdout())![1];
      const alice = (await agentqJson(db, ['users', 'add', 'alice', '--json'])).token as string;
      const bob = (await agentqJson(db, ['users', 'add', 'bob', '--json'])).token as string;
      const api = (token: string, method: string, path: string, body?: unknown) =>
        fetch(`${url}/api/v1${path}`, {
          method,
          headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body: body ? JSON.stringify(body) : undefined,
        });

      // One job gated and approved from the CLI.
      const first = await submit(db, ['-a', 'gate', '-q', 'v1']);
      await waitForJob(db, first, (j) => j.status === 'waiting', 'the first job to wait');
      const info = await agentq(db, ['info', first]);
      assert.match(info.stdout, /Waiting for\s+approval /);
      const pending = await agentqJson(db, ['approvals', 'list', '--json']);
      assert.equal(pending.length, 1);
      assert.equal(pending[0].title, 'Ship v1?');
      const table = await agentq(db, ['approvals']);
      assert.match(table.stdout, /pending\s+Ship v1\?/);
      const shown = await agentq(db, ['approvals', 'show', pending[0].id]);
      assert.match(shown.stdout, /Ship v1\?[\s\S]*Status\s+pending/);
      const approved = await agentqJson(db, ['approvals', 'approve', pending[0].id, '--by', 'carol', '--comment', 'ok to ship', '--json']);
      assert.equal(approved.status, 'approved');
      const done = await waitForJob(db, first, (j) => j.status === 'completed', 'the approved job');
      assert.deepEqual(done.result, { shipped: 'v1', by: 'carol', comment: 'ok to ship' });
      const again = await agentq(db, ['approvals', 'reject', pending[0].id]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already approved/);

      // One of Alice's, rejected through the REST API; Bob gets 404 on it.
      const submitted = await api(alice, 'POST', '/jobs', { agent: 'gate', instructions: 'v2' });
      const second = ((await submitted.json()) as { id: string }).id;
      await waitForJob(db, second, (j) => j.status === 'waiting', 'the second job to wait');
      const listed = (await (await api(alice, 'GET', '/approvals?status=pending')).json()) as { approvals: Array<{ id: string; jobId: string }> };
      assert.deepEqual(listed.approvals.map((a) => a.jobId), [second]);
      const id = listed.approvals[0].id;
      assert.deepEqual(((await (await api(bob, 'GET', '/approvals')).json()) as { approvals: unknown[] }).approvals, []);
      for (const [method, path] of [['GET', `/approvals/${id}`], ['POST', `/approvals/${id}/approve`], ['POST', `/approvals/${id}/reject`]]) {
        assert.equal((await api(bob, method, path)).status, 404, `${method} ${path}`);
      }
      assert.equal((await api(alice, 'POST', `/approvals/${id}/reject`, { comment: 'wrong version', extra: 1 })).status, 400);
      const rejected = await api(alice, 'POST', `/approvals/${id}/reject`, { comment: 'wrong version' });
      assert.equal(rejected.status, 200);
      const decision = (await rejected.json()) as { status: string; decidedBy: string };
      assert.deepEqual([decision.status, decision.decidedBy], ['rejected', 'alice']);
      const failed = await waitForJob(db, second, (j) => j.status === 'failed', 'the rejected job');
      assert.match(failed.error.message, /rejected by alice: wrong version/);
      assert.equal((await api(alice, 'POST', `/approvals/${id}/approve`)).status, 409);
      // The admin sees both, decided, through the CLI on the server.
      const all = await agentqJson(db, ['--server', url, '--token', admin, 'approvals', 'list', '--all']);
      assert.deepEqual(all.map((a: { status: string }) => a.status).sort(), ['approved', 'rejected']);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
