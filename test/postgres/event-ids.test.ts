/**
 * PostgreSQL's events table has no index but its primary key: time filters,
 * retention and `lastId` find their rows through the ids. Ids follow time to
 * within ORDER_SLACK_MS, so a time becomes an id bound by bisection, and
 * retention walks the ids from the oldest up; marks of settled ids let
 * `lastId` read only the newest events.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { Queue } from '../../src/index.ts';
import type { PostgresStore } from '../../src/store/postgres/index.ts';
import { newWriteId } from '../../src/store/postgres/access.ts';
import { idAfter, idBefore, ORDER_SLACK_MS, type Probe } from '../../src/store/postgres/events.ts';
import { freshSchema, postgresBaseUrl, postgresUnavailable } from '../helpers/engines.ts';
import { recordingPool, type Sent } from '../helpers/recording-pool.ts';
import { waitFor } from '../helpers/wait.ts';

/** A deterministic spread of -n..n, so created_at wanders around the id order. */
const jitter = (i: number, n: number) => ((i * 7919) % (2 * n + 1)) - n;

describe('bisecting event ids by time', () => {
  // Ids 1..N with every seventh missing, created one a second, give or take 20 s.
  const N = 50_000;
  const rows: Probe[] = [];
  for (let id = 1; id <= N; id++) if (id % 7 !== 0) rows.push({ id, createdAt: id * 1000 + jitter(id, 20_000) });
  const probe = async (id: number) => rows.find((r) => r.id >= id);

  it('finds bounds that hold every event of the time, and not many more', async () => {
    for (const t of [-5_000_000, 0, 1_000, 999_999, 12_345_678, 25_000_000, 49_990_000, 60_000_000]) {
      const after = await idBefore(t, 0, N, probe);
      const created = rows.filter((r) => r.createdAt >= t);
      assert.ok(created.every((r) => r.id > after), `every event created from ${t} is above ${after}`);
      assert.ok(rows.filter((r) => r.id > after).length - created.length <= 2 * (ORDER_SLACK_MS / 1000) + 1500, `few more above ${after} for ${t}`);

      const before = await idAfter(t, 0, N + 1, probe);
      const upTo = rows.filter((r) => r.createdAt <= t);
      if (before == null) assert.ok(t > (N - 1500) * 1000 - ORDER_SLACK_MS || upTo.length === rows.length, `a bound for ${t}`);
      else {
        assert.ok(upTo.every((r) => r.id < before), `every event created up to ${t} is below ${before}`);
        assert.ok(rows.filter((r) => r.id < before).length - upTo.length <= 2 * (ORDER_SLACK_MS / 1000) + 1500, `few more below ${before} for ${t}`);
      }
    }
  });
});

describe('PostgreSQL events found through their ids', { skip: postgresUnavailable }, () => {
  /** A queue on a fresh schema through a pool that records the store's statements. */
  async function open() {
    const schema = freshSchema();
    const { pool, seen } = await recordingPool();
    const queue = await Queue.open(undefined, { pool, schema });
    const events = `"${schema}".events`;
    return { schema, seen, pool, queue, events };
  }

  const BASE = 1_700_000_000_000;
  const COUNT = 20_000;

  /** COUNT events, one a second from BASE give or take 5 s; every hundredth is a job's. */
  async function fill(pool: pg.Pool, events: string) {
    await pool.query(
      `INSERT INTO ${events} (type, source, job_id, payload, created_at)
       SELECT 'app.tick', 'test', CASE WHEN i % 100 = 0 THEN 'job-' || (i / 1000) END, '{}', $1::bigint + i * 1000 + ((i * 7919) % 10001) - 5000
       FROM generate_series(1, ${COUNT}) i ORDER BY i`,
      [BASE],
    );
    await pool.query(`ANALYZE ${events}`);
  }

  async function idsWhere(pool: pg.Pool, events: string, where: string, values: unknown[]): Promise<number[]> {
    const { rows } = await pool.query<{ id: string }>(`SELECT id FROM ${events} WHERE ${where} ORDER BY id`, values);
    return rows.map((r) => Number(r.id));
  }

  /** Plans every statement the store sent that reads the events table, for its values and for any. */
  async function assertNoScan(pool: pg.Pool, seen: Sent[], schema: string) {
    const reads = seen.filter((s) => s.text.includes(`"${schema}".events `) && !/^\s*INSERT/i.test(s.text));
    assert.ok(reads.length > 0);
    const scans = (node: { 'Node Type': string; 'Relation Name'?: string; Plans?: unknown[] }): string[] => [
      ...(node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'events' ? ['a sequential scan of events'] : []),
      ...((node.Plans ?? []) as Array<typeof node>).flatMap(scans),
    ];
    for (const s of reads) {
      for (const [sql, values] of [
        [`EXPLAIN (FORMAT JSON) ${s.text}`, s.values],
        [`EXPLAIN (FORMAT JSON, GENERIC_PLAN) ${s.text}`, []],
      ] as const) {
        const { rows } = await pool.query<{ 'QUERY PLAN': Array<{ Plan: Parameters<typeof scans>[0] }> }>(sql, [...values]);
        assert.deepEqual(scans(rows[0]['QUERY PLAN'][0].Plan), [], s.text);
      }
    }
  }

  it('filters by time exactly, reading only the ids around the time', async () => {
    const { schema, seen, pool, queue, events } = await open();
    try {
      await fill(pool, events);
      const windows: Array<[number | undefined, number | undefined, string?]> = [
        [BASE + 5_000_000, BASE + 5_060_000],
        [BASE - 10_000, BASE + 3_000],
        [BASE + 19_990_000, undefined],
        [undefined, BASE + 10_000],
        [BASE + 7_777_777, BASE + 7_777_777],
        [BASE + 2_000_000, BASE + 9_000_000, 'job-5'],
        [BASE + 30_000_000, undefined],
      ];
      for (const [from, to, jobId] of windows) {
        const where = ['true'];
        const values: unknown[] = [];
        if (from != null) where.push(`created_at >= $${values.push(from)}`);
        if (to != null) where.push(`created_at <= $${values.push(to)}`);
        const inWindow = (await idsWhere(pool, events, where.join(' AND '), values)).length;
        if (jobId != null) where.push(`job_id = $${values.push(jobId)}`);
        const expected = await idsWhere(pool, events, where.join(' AND '), values);
        const before = seen.length;
        const got = await queue.store.listEvents({ after: 0, limit: COUNT, createdFrom: from, createdTo: to, jobId });
        assert.deepEqual(got.map((e) => e.id), expected, `from ${from} to ${to} ${jobId ?? ''}`);

        // The list statement's id bounds: the rows between them are the window's and few more.
        const list = seen.slice(before).findLast((s) => s.text.includes('ORDER BY id LIMIT'))!;
        const after = Number(list.values[0]);
        const below = list.text.includes('id < $2') ? Number(list.values[1]) : Infinity;
        const between = (await idsWhere(pool, events, 'id > $1 AND id < $2', [after, below === Infinity ? Number.MAX_SAFE_INTEGER : below])).length;
        assert.ok(between - inWindow <= 2 * (ORDER_SLACK_MS / 1000 + 10) + 2 * 1000, `from ${from} to ${to}: ${between} ids read for ${inWindow}`);
      }
      await assertNoScan(pool, seen, schema);
      await queue.close();
    } finally {
      await pool.end();
    }
  });

  it('deletes exactly the events created before the cutoff, a chunk at a time', async () => {
    const { schema, seen, pool, queue, events } = await open();
    try {
      await fill(pool, events);
      const cutoff = BASE + 12_345_678;
      const old = await idsWhere(pool, events, 'created_at < $1', [cutoff]);
      assert.ok(old.length > 12_000);
      assert.equal(await queue.store.deleteEvents(cutoff), old.length);
      assert.deepEqual(await idsWhere(pool, events, 'created_at < $1', [cutoff]), []);
      assert.equal((await idsWhere(pool, events, 'true', [])).length, COUNT - old.length, 'the newer events stay');
      assert.equal(await queue.store.deleteEvents(cutoff), 0);
      assert.equal(await queue.store.deleteEvents(BASE + COUNT * 1000 + 10_000), COUNT - old.length, 'all of them, past the newest');
      await queue.events.lastId();
      await assertNoScan(pool, seen, schema);
      await queue.close();
    } finally {
      await pool.end();
    }
  });

  it('reads no event at or above one another transaction is still writing, and starts readers below it', async () => {
    const { schema, pool, queue, events } = await open();
    const other = new pg.Client({ connectionString: await postgresBaseUrl() });
    await other.connect();
    try {
      assert.equal(await queue.events.lastId(), 0);
      for (let i = 0; i < 3; i++) await queue.events.publish({ type: 'app.before' });
      assert.equal(await queue.events.lastId(), 3);

      // An event being written, as the store writes one: its ids held first.
      await other.query('BEGIN');
      await other.query(`SELECT "${schema}".hold_event_ids()`);
      const held = Number(
        (await other.query<{ id: string }>(`INSERT INTO ${events} (type, source, payload, created_at) VALUES ('app.held', 'test', '{}', 0) RETURNING id`)).rows[0].id,
      );
      assert.equal(held, 4);
      for (let i = 0; i < 3; i++) await queue.events.publish({ type: 'app.after' });
      const types = async (after: number) => (await queue.events.list({ after })).map((e) => e.type);
      assert.deepEqual(await types(0), ['app.before', 'app.before', 'app.before'], 'none from the held one on');
      assert.equal(await queue.events.lastId(), held - 1, 'a reader starting now gets the held event');

      await other.query('COMMIT');
      assert.deepEqual(await types(3), ['app.held', 'app.after', 'app.after', 'app.after']);
      assert.equal(await queue.events.lastId(), held + 3);
      await queue.close();
    } finally {
      await other.end();
      await pool.end();
    }
  });

  it('does not pass an event whose transaction took its id before an older transaction took a larger one', async () => {
    // A claim takes its transaction id when it locks its rows and its event ids at the
    // end; a newer transaction can take a smaller event id in between and commit later.
    const { schema, pool, queue, events } = await open();
    const [older, newer] = [new pg.Client({ connectionString: await postgresBaseUrl() }), new pg.Client({ connectionString: await postgresBaseUrl() })];
    for (const c of [older, newer]) await c.connect();
    const write = async (c: pg.Client, type: string) => {
      await c.query(`SELECT "${schema}".hold_event_ids()`);
      return Number((await c.query<{ id: string }>(`INSERT INTO ${events} (type, source, payload, created_at) VALUES ($1, 'test', '{}', 0) RETURNING id`, [type])).rows[0].id);
    };
    try {
      await older.query('BEGIN');
      await older.query('SELECT pg_current_xact_id()');
      await newer.query('BEGIN');
      await newer.query('SELECT pg_current_xact_id()');
      const first = await write(newer, 'app.newer');
      const second = await write(older, 'app.older');
      assert.ok(first < second);
      await older.query('COMMIT');
      assert.deepEqual(await queue.events.list({ after: 0 }), [], 'the older one waits for the smaller id');
      assert.equal(await queue.events.lastId(), first - 1);
      const seen: string[] = [];
      const sub = queue.events.subscribe('app.*', (e) => void seen.push(e.type), { after: 0, pollMs: 20 });
      await newer.query('COMMIT');
      await waitFor(() => seen.length === 2, { what: 'both events' });
      assert.deepEqual(seen, ['app.newer', 'app.older']);
      sub.close();
      await queue.close();
    } finally {
      for (const c of [older, newer]) await c.end();
      await pool.end();
    }
  });

  it('holds the event ids of every statement that writes job events until its transaction ends', async () => {
    const { schema, seen, pool, queue, events } = await open();
    const store = queue.store as PostgresStore;
    const raw = new pg.Client({ connectionString: await postgresBaseUrl() });
    await raw.connect();
    const jobs = `"${schema}".jobs`;
    /** Runs `write` in a transaction left open, checks readers stop below its events, then commits. */
    const whileOpen = async (what: string, write: () => Promise<unknown>, type: string) => {
      const before = await queue.events.lastId();
      await raw.query('BEGIN');
      await write();
      const { rows } = await raw.query<{ id: string; type: string }>(`SELECT id, type FROM ${events} WHERE id > $1 ORDER BY id`, [before]);
      assert.equal(rows[0]?.type, type, `${what}: its event`);
      await queue.events.publish({ type: 'app.after' });
      assert.deepEqual(await queue.events.list({ after: before }), [], `${what}: nothing read past its event while open`);
      assert.equal(await queue.events.lastId(), Number(rows[0].id) - 1, what);
      await raw.query('COMMIT');
      assert.deepEqual((await queue.events.list({ after: before })).map((e) => e.type), [type, 'app.after'], what);
    };
    try {
      const [a] = await queue.submitMany([{ agent: 'x' }, { agent: 'x' }, { agent: 'x' }]);
      // The statements as the store sends them: a claim, and a completion of a job nothing hangs on.
      let from = seen.length;
      const [claimed] = await store.claimJobs({ workerId: 'w1', agents: ['x'], limit: 1, leaseMs: 60_000 });
      const claim = seen.slice(from).find((q) => q.text.includes('SKIP LOCKED'))!;
      from = seen.length;
      await store.finishJobs([{ kind: 'complete', lease: { id: claimed.id, workerId: 'w1', attempt: 1 }, result: 'null' }]);
      const complete = seen.slice(from).find((q) => q.text.includes('events_written'))!;
      from = seen.length;
      await queue.events.publish({ type: 'app.replayed' });
      const publish = seen.slice(from).find((q) => q.text.includes('INSERT INTO') && q.text.includes('events'))!;

      await whileOpen('a claim', () => raw.query(claim.text, claim.values), 'job.started');
      const { rows } = await pool.query<{ id: string }>(`SELECT id FROM ${jobs} WHERE status = 'running'`);
      assert.equal(rows.length, 1, 'the job that claim took');
      await whileOpen(
        'a completion',
        () => raw.query(complete.text, complete.values.map((v) => (typeof v === 'string' ? v.replace(claimed.id, rows[0].id) : v))),
        'job.completed',
      );
      // A publish, as another append (its id is the append's own, written once).
      await whileOpen('a publish', () => raw.query(publish.text, publish.values.map((v, i) => (i === 0 ? newWriteId() : v))), 'app.replayed');
      await whileOpen('the update trigger', () => raw.query(`UPDATE ${jobs} SET status = 'cancelled', finished_at = 1, updated_at = 1 WHERE status = 'pending'`), 'job.cancelled');
      await whileOpen(
        'the insert trigger',
        async () => {
          await raw.query(`CREATE TEMP TABLE copy ON COMMIT DROP AS SELECT * FROM ${jobs} WHERE id = $1`, [a.id]);
          await raw.query(`UPDATE copy SET id = '0000000000ZZZZZZZZZZZZZZZZ', status = 'pending', key = NULL`);
          await raw.query(`INSERT INTO ${jobs} SELECT * FROM copy`);
        },
        'job.created',
      );
      await queue.close();
    } finally {
      await raw.end();
      await pool.end();
    }
  });
});
