/**
 * The plans of a large claim and of the statements that write a batch of
 * leases (outcomes and heartbeats), under the statistics they meet after a
 * burst of submits: ones gathered while the table was small and every job
 * pending, so they say that none runs. A plan that believes them scans the
 * whole jobs table, or compares every lease of the batch with every other,
 * for each batch; under load such a statement ran for most of a second and
 * slowed every other one down, and a table grown since the statistics makes
 * a scan of it worse still. Each batch must instead reach its jobs through
 * the primary key and join them to the batch in one pass.
 *
 * The statements are the store's own, caught on their way through an
 * application's pool, and planned again (EXPLAIN, not run) with their values.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Queue } from '../../src/index.ts';
import type { PostgresStore } from '../../src/store/postgres/index.ts';
import { freshSchema, postgresUnavailable } from '../helpers/engines.ts';
import { recordingPool } from '../helpers/recording-pool.ts';

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Parent Relationship'?: string;
  Plans?: PlanNode[];
}

/** What in a plan makes it grow with the table or with the square of the batch. */
function faults(node: PlanNode, table: string): string[] {
  const found: string[] = [];
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === table) found.push(`a sequential scan of ${table}`);
  if (node['Node Type'] === 'Nested Loop') {
    let inner = node.Plans?.find((p) => p['Parent Relationship'] === 'Inner');
    // A materialized batch is still read whole for each job.
    while (inner && inner['Node Type'] === 'Materialize') inner = inner.Plans?.[0];
    if (inner?.['Node Type'] === 'Function Scan') found.push('a nested loop that reads the whole batch for each job');
  }
  for (const child of node.Plans ?? []) found.push(...faults(child, table));
  return found;
}

describe('PostgreSQL plans of batched lease writes', { skip: postgresUnavailable }, () => {
  it('reach each job by id and join the batch in one pass, even when the statistics say no job runs', async () => {
    const schema = freshSchema();
    const { pool, seen } = await recordingPool();
    try {
      const queue = await Queue.open(undefined, { pool, schema });
      const store = queue.store as PostgresStore;
      for (let i = 0; i < 4; i++) await queue.submitMany(Array.from({ length: 1000 }, () => ({ agent: 'a' })));
      await pool.query(`ANALYZE "${schema}".jobs`);
      const beforeClaim = seen.length;
      assert.equal((await store.claimJobs({ workerId: 'w0', agents: ['a'], limit: 200, leaseMs: 60_000 })).length, 200);
      const claim = seen.slice(beforeClaim).find((s) => s.text.includes('SKIP LOCKED'))!;
      const jobs = await store.claimJobs({ workerId: 'w1', agents: ['a'], limit: 1000, leaseMs: 60_000 });
      assert.equal(jobs.length, 1000);
      const leases = jobs.map((j) => ({ id: j.id, workerId: 'w1', attempt: j.attempts }));

      const from = seen.length;
      assert.equal((await store.heartbeat(leases, 60_000)).size, 1000);
      const half = leases.length / 2;
      const done = await store.finishJobs([
        ...leases.slice(0, half).map((lease) => ({ kind: 'complete' as const, lease, result: 'null' })),
        ...leases.slice(half).map((lease) => ({ kind: 'fail' as const, lease, error: '{"message":"no"}' })),
      ]);
      assert.deepEqual(new Set(done), new Set([true]));
      const stats = await queue.stats();
      assert.equal(stats.byAgent.a.completed, half);
      assert.equal(stats.byAgent.a.failed, half);

      // Plan each again as it met the statistics: those gathered before the claim.
      // A batch goes as arrays, or as array literals ('{a,b,...}') the store wrote itself.
      const elements = (v: unknown) => (Array.isArray(v) ? v.length : typeof v === 'string' && /^\{.*\}$/s.test(v) ? v.split(',').length : 0);
      const batched = seen.slice(from).filter((s) => s.values.some((v) => elements(v) >= half));
      const kindOf = (text: string) =>
        ['heartbeat_at = ', "'completed'", "'failed'"].findIndex((mark) => text.includes(mark));
      const kinds = batched.map((s) => ['heartbeat', 'complete', 'fail'][kindOf(s.text)] ?? 'other');
      assert.deepEqual([...kinds].sort(), ['complete', 'fail', 'heartbeat']);
      const client = await pool.connect();
      try {
        // The claim of a batch that is a quarter of the table, planned with those statistics.
        for (const [how, sql, values] of [
          ['for its values', `EXPLAIN (FORMAT JSON) ${claim.text}`, claim.values],
          ['for any values', `EXPLAIN (FORMAT JSON, GENERIC_PLAN) ${claim.text}`, []],
        ] as const) {
          const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(sql, [...values]);
          assert.deepEqual(faults(rows[0]['QUERY PLAN'][0].Plan, 'jobs'), [], `the claim, planned ${how}`);
        }
        for (const [i, s] of batched.entries()) {
          // As planned for these values, and as a plan for any values (which a prepared
          // statement may switch to after a few runs).
          for (const [how, sql, values] of [
            ['for its values', `EXPLAIN (FORMAT JSON) ${s.text}`, s.values],
            ['for any values', `EXPLAIN (FORMAT JSON, GENERIC_PLAN) ${s.text}`, []],
          ] as const) {
            const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(sql, [...values]);
            const [row] = rows;
            assert.deepEqual(faults(row['QUERY PLAN'][0].Plan, 'jobs'), [], `the ${kinds[i]} batch, planned ${how}`);
          }
        }
      } finally {
        client.release();
      }
      await queue.close();
    } finally {
      await pool.end();
    }
  });
});
