/** `agentq limits`, usage in info, tree and status, and budgets from submit: the real binary. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { agentq, agentqJson, freshDb, start, waitForJob } from './run.ts';

const HANDLERS = `
export default {
  lead: async (job, ctx) => {
    await ctx.usage({ model: 'm', inputTokens: 100, outputTokens: 50, costUsd: 0.25 });
    if ((await ctx.children()).length === 0) {
      await ctx.spawn({ agent: 'helper' });
      return ctx.waitForChildren();
    }
    return ctx.remainingBudget();
  },
  helper: async (job, ctx) => {
    await ctx.usage({ model: 'm', inputTokens: 10, outputTokens: 5 });
  },
};
`;

describe('agentq limits and usage', () => {
  it('sets, lists and removes rate limits; shows usage in info, tree, status and limits usage', async () => {
    const db = freshDb();
    const module = join(dirname(db), 'agents.mjs');
    writeFileSync(module, HANDLERS);
    const set = await agentq(db, ['limits', 'set', 'agent:lead', '--max', '100', '--per', '1s']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /at most 100 starts per 1\.0s/);
    assert.equal((await agentq(db, ['limits', 'set', 'x', '--max', '0', '--per', '1s'])).code, 2);
    assert.deepEqual((await agentqJson(db, ['limits', 'list', '--json'])).map((l: { key: string; max: number }) => [l.key, l.max]), [['agent:lead', 100]]);
    assert.match((await agentq(db, ['limits'])).stdout, /agent:lead\s+100 per 1\.0s/);

    const worker = start(db, ['worker', '--handlers', module, '--agent', 'lead', 'helper', '--poll-interval', '50ms']);
    try {
      await worker.output(/serving/, 'the worker');
      const job = await agentqJson(db, ['submit', '-a', 'lead', '--budget-tokens', '1000', '--rate-key', 'model:m', '--json']);
      assert.deepEqual(job.budget, { tokens: 1000 });
      assert.equal(job.rateKey, 'model:m');
      const done = await waitForJob(db, job.id, (j) => j.status === 'completed', 'the lead job');
      // The lead ran twice (300 tokens) and its helper once (15): 685 of 1000 left.
      assert.deepEqual(done.result, { tokens: 685, costUsd: null });
      const info = await agentq(db, ['info', job.id]);
      assert.match(info.stdout, /Usage\s+300 tokens, \$0\.5000 \(2 calls\)/);
      assert.match(info.stdout, /Tree usage\s+315 tokens/);
      assert.match(info.stdout, /Budget\s+1,000 tokens for its tree/);
      assert.match(info.stdout, /Rate key\s+model:m/);
      const tree = await agentq(db, ['tree', job.id]);
      assert.match(tree.stdout, /helper.*15 tok/);
      assert.match(tree.stdout.split('\n')[0], /lead.*300 tok \$0\.5000/, 'the root’s own usage');
      assert.match(tree.stdout, /tree usage: 315 tokens \(210 in, 105 out\), \$0\.5000, 3 calls/);
      const status = await agentq(db, ['status']);
      assert.match(status.stdout, /Usage[\s\S]*lead\s+2\s+200\s+100\s+\$0\.5000/);
      const byOwner = await agentqJson(db, ['limits', 'usage', '--by', 'owner', '--json']);
      assert.equal(byOwner[0].tokens, 315);
      const over = await agentq(db, ['submit', '-a', 'lead', '--budget-usd', '-1']);
      assert.equal(over.code, 2);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    assert.equal((await agentq(db, ['limits', 'remove', 'agent:lead'])).code, 0);
    assert.deepEqual(await agentqJson(db, ['limits', 'list', '--json']), []);
  });
});
