/**
 * Job events on PostgreSQL. Claims and the quick outcome writes build their
 * events' payloads themselves; the triggers build the others with
 * `job_event_payload`. Both must say the same of the same row, whatever
 * characters its names and messages hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { Queue } from '../../src/index.ts';
import type { PostgresStore } from '../../src/store/postgres/index.ts';
import { freshSchema, postgresBaseUrl, postgresUnavailable } from '../helpers/engines.ts';

describe('PostgreSQL job events', { skip: postgresUnavailable }, () => {
  it('writes, from claims and quick outcomes, the payload job_event_payload gives the same row', async () => {
    const schema = freshSchema();
    const url = `${await postgresBaseUrl()}?schema=${schema}`;
    const queue = await Queue.open(url);
    const client = new pg.Client({ connectionString: await postgresBaseUrl() });
    await client.connect();
    try {
      const store = queue.store as PostgresStore;
      const agent = 'we"ird\\agent ✓ {x}, y';
      const parent = await queue.submit({ agent: 'p' });
      const job = await queue.submit({ agent, type: 't"y\\pe\u00e9', parentId: parent.id, maxAttempts: 3 });
      /** The newest event of the job, and what job_event_payload says of the job's row now. */
      const compare = async (type: string) => {
        const { rows } = await client.query<{ type: string; payload: string }>(
          `SELECT type, payload FROM ${schema}.events WHERE job_id = $1 ORDER BY id DESC LIMIT 1`,
          [job.id],
        );
        assert.equal(rows[0].type, type);
        const expected = await client.query<{ p: string }>(`SELECT ${schema}.job_event_payload(j) AS p FROM ${schema}.jobs j WHERE id = $1`, [job.id]);
        assert.deepEqual(JSON.parse(rows[0].payload), JSON.parse(expected.rows[0].p), `${type}: ${rows[0].payload}`);
        return JSON.parse(rows[0].payload) as Record<string, unknown>;
      };
      const claim = async () => {
        const claimed = await store.claimJobs({ workerId: 'w1', agents: [agent], limit: 10, leaseMs: 60_000 });
        assert.deepEqual(claimed.map((j) => j.id), [job.id]);
        return { id: job.id, workerId: 'w1', attempt: claimed[0].attempts };
      };

      let lease = await claim();
      const started = await compare('job.started');
      assert.equal(started.agent, agent);
      assert.equal(started.parentId, parent.id);
      assert.equal(started.error, null);

      assert.equal(await store.setProgress(lease, 33.25, 'line "one"\nline\ttwo \\ ✓'), true);
      const error = JSON.stringify({ message: 'it "broke"\n\\here', name: 'Error' });
      assert.deepEqual(await store.finishJobs([{ kind: 'retry', lease, error, runAt: 0 }]), [true]);
      const retrying = await compare('job.retrying');
      assert.equal(retrying.progressMessage, 'line "one"\nline\ttwo \\ ✓');
      assert.equal(retrying.progress, 33.25);

      lease = await claim();
      const again = await compare('job.started');
      assert.equal(again.attempt, 2);
      assert.deepEqual(again.error, JSON.parse(error), 'the last attempt’s error, as stored');

      assert.deepEqual(await store.finishJobs([{ kind: 'complete', lease, result: '{"ok":true}' }]), [true]);
      const completed = await compare('job.completed');
      assert.equal(completed.status, 'completed');
    } finally {
      await client.end();
      await queue.close();
    }
  });
});
