/**
 * Events on PostgreSQL.
 *
 * Job events are written by triggers on the jobs table, statement-level with
 * transition tables: whatever statement changes jobs — a batched claim, a
 * cascade of cancels — the events for every changed row are written by one
 * INSERT in the same transaction. The event type follows from the row's old
 * and new status, the same rules the SQLite engine applies where it changes
 * a job.
 *
 * Ids come from an identity column, so they are handed out at insert, not at
 * commit: a transaction that took id 5 may commit after one that took id 6.
 * Every transaction that writes events therefore first holds a shared
 * advisory lock keyed by the next id the sequence will hand out
 * (`hold_event_ids`, migration 11): every id it takes is at or above that
 * key, and the lock is visible to other sessions (`pg_locks`) until it ends.
 * A reader first reads the frontier: the least of the next id and the keys
 * held (one statement), then the events below it (the next): every id below
 * the frontier is final, committed or rolled back, so a reader that resumes
 * after the last id it saw misses nothing.
 *
 * The table has one index, its primary key: every job writes two or three
 * events, and each further index cost every one of them an insert. What an
 * index on `created_at` would have found is found through the ids, which
 * follow time: a statement takes its `created_at` before it runs and its ids
 * while it runs, so an event with a larger id than another was created no
 * earlier than the other's time less the longest a statement takes
 * (`ORDER_SLACK_MS`). Time bounds become id bounds by bisecting the ids, and
 * retention walks the ids from the oldest up.
 */
import { newWriteId, type PostgresAccess } from './access.ts';
import { rowToEvent, type EventRow } from '../rows.ts';
import type { EventFilter, NewEvent, StoredEvent } from '../store.ts';

export function eventsMigrationSql(s: string): string {
  return `
CREATE TABLE ${s}.events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tx xid8 NOT NULL DEFAULT pg_current_xact_id(),
  type text NOT NULL,
  source text NOT NULL,
  target text,
  job_id text COLLATE "C",
  owner text,
  payload text NOT NULL,
  created_at bigint NOT NULL
);
-- Migration 9 drops these two, migration 11 the tx column.
CREATE INDEX events_created ON ${s}.events (created_at);
CREATE INDEX events_tx ON ${s}.events (tx);

CREATE FUNCTION ${s}.job_event_payload(j ${s}.jobs) RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT json_build_object('jobId', j.id, 'agent', j.agent, 'type', j.type, 'status', j.status,
    'attempt', j.attempts, 'progress', j.progress, 'progressMessage', j.progress_message,
    'error', j.error::json, 'parentId', j.parent_id)::text
$f$;

${insertedEventsFunctionSql(s, false)}

${updatedEventsFunctionSql(s, false, false)}

CREATE TRIGGER jobs_inserted_events AFTER INSERT ON ${s}.jobs
  REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION ${s}.jobs_inserted_events();
CREATE TRIGGER jobs_updated_events AFTER UPDATE ON ${s}.jobs
  REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION ${s}.jobs_updated_events();
`;
}

/**
 * The setting a statement sets (for its transaction) when it wrote the job
 * events of its own rows: the claim and the quick outcome writes, whose event
 * type is known beforehand. The update trigger then writes none for that
 * statement, and clears the setting, so the next statement is back on the
 * trigger. A statement that sets it always fires the trigger (statement-level
 * triggers fire even for no rows), and a failed statement rolls the setting
 * back with its transaction.
 */
const WRITTEN_SETTING = 'agentq.job_events';

/** The insert trigger's function: holding the ids it takes (`hold`) from migration 11 on. */
function insertedEventsFunctionSql(s: string, hold: boolean): string {
  return `${hold ? 'CREATE OR REPLACE' : 'CREATE'} FUNCTION ${s}.jobs_inserted_events() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
${hold ? `  PERFORM ${s}.hold_event_ids();
` : ''}  INSERT INTO ${s}.events (type, source, target, job_id, owner, payload, created_at)
  SELECT 'job.created', 'agentq', n.agent, n.id, n.owner, ${s}.job_event_payload(n), n.created_at
  FROM new_jobs n ORDER BY n.id;
  RETURN NULL;
END
$f$;`;
}

/** The update trigger's function: `honourWritten` from migration 7 on, `hold` from 11. */
function updatedEventsFunctionSql(s: string, honourWritten: boolean, hold: boolean): string {
  return `${honourWritten ? 'CREATE OR REPLACE' : 'CREATE'} FUNCTION ${s}.jobs_updated_events() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
${
    honourWritten
      ? `  IF current_setting('${WRITTEN_SETTING}', true) = 'written' THEN
    PERFORM set_config('${WRITTEN_SETTING}', '', true);
    RETURN NULL;
  END IF;
`
      : ''
  }${hold ? `  PERFORM ${s}.hold_event_ids();
` : ''}  INSERT INTO ${s}.events (type, source, target, job_id, owner, payload, created_at)
  SELECT e.type, 'agentq', n.agent, n.id, n.owner, ${s}.job_event_payload(n), n.updated_at
  FROM new_jobs n JOIN old_jobs o ON o.id = n.id
  CROSS JOIN LATERAL (SELECT CASE
    WHEN n.status = o.status THEN
      CASE WHEN n.status = 'running' AND n.attempts = o.attempts
        AND (n.progress IS DISTINCT FROM o.progress OR n.progress_message IS DISTINCT FROM o.progress_message)
      THEN 'job.progress' END
    WHEN n.status = 'running' THEN 'job.started'
    WHEN n.status = 'completed' THEN 'job.completed'
    WHEN n.status = 'failed' THEN 'job.failed'
    WHEN n.status = 'cancelled' THEN 'job.cancelled'
    WHEN n.status = 'waiting' THEN 'job.waiting'
    WHEN o.status = 'waiting' THEN 'job.resumed'
    WHEN o.status = 'blocked' THEN 'job.unblocked'
    WHEN o.status IN ('failed', 'cancelled') THEN 'job.retried'
    WHEN o.status = 'running' AND n.attempts < o.attempts THEN 'job.released'
    WHEN o.status = 'running' THEN 'job.retrying'
  END AS type) e
  WHERE e.type IS NOT NULL
  ORDER BY n.id;
  RETURN NULL;
END
$f$;`;
}

/** Migration 7: the update trigger leaves out statements that wrote their own job events. */
export function writtenEventsMigrationSql(s: string): string {
  return updatedEventsFunctionSql(s, true, false);
}

/**
 * A job event's payload for the updated row `n`: the same JSON as
 * `job_event_payload(n)`, built by concatenation. `json_build_object` works
 * out every argument's type again on every call, and for the two events of a
 * no-op job that was about a tenth of the server's time per job. Ids (the
 * job's and its parent's) are ULIDs and statuses are words, so they need no
 * escaping; names and messages go through `to_json`.
 */
const PAYLOAD_SQL = `'{"jobId":"' || n.id || '","agent":' || to_json(n.agent)::text || ',"type":' || to_json(n.type)::text
          || ',"status":"' || n.status || '","attempt":' || n.attempts || ',"progress":' || n.progress
          || ',"progressMessage":' || coalesce(to_json(n.progress_message)::text, 'null')
          || ',"error":' || coalesce(n.error, 'null') || ',"parentId":' || coalesce('"' || n.parent_id || '"', 'null') || '}'`;

/**
 * CTEs for a statement whose `upd` CTE updates jobs and returns their rows
 * (`RETURNING j.*`): they write one event of `type` per row, in job id order
 * as the trigger does, and tell the trigger so.
 */
export function writtenJobEventsSql(s: string, type: string): string {
  return `events_flag AS MATERIALIZED (SELECT set_config('${WRITTEN_SETTING}', 'written', true), ${s}.hold_event_ids()),
      events_written AS (
        INSERT INTO ${s}.events (type, source, target, job_id, owner, payload, created_at)
        SELECT '${type}', 'agentq', n.agent, n.id, n.owner, ${PAYLOAD_SQL}, n.updated_at
        FROM upd n CROSS JOIN events_flag ORDER BY n.id
      )`;
}

/** Migration 9: events keep only their primary key (migration 11 takes over from the `tx` index). */
export function marksMigrationSql(s: string): string {
  return `
DROP INDEX ${s}.events_created;
DROP INDEX ${s}.events_tx;
CREATE TABLE ${s}.event_marks (
  id bigint PRIMARY KEY,
  horizon xid8 NOT NULL
);
`;
}

/** Ids below this modulus are a lock's second key; see `hold_event_ids`. */
const ID_KEY_MODULUS = 2147483648;

/** The first key of the event-id locks of schema `s` (quoted): its name's hash, as a non-negative int4. */
function idLockClass(s: string): string {
  return `(hashtext('agentq.events.' || ${quoteLiteral(s.slice(1, -1))}) & 2147483647)`;
}

function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The next id the events' sequence will hand out. */
function nextIdSql(s: string): string {
  return `(SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM ${s}.events_id_seq)`;
}

/**
 * Migration 11: a transaction holds the event ids it will take (see the top
 * of this file) instead of readers judging each event by its transaction id,
 * which let a reader pass an event still being written: a transaction that
 * took its transaction id early and its event ids late (a claim locks its rows
 * first) made an event visible whose transaction id was older than every
 * running one while a newer transaction still held a smaller event id.
 */
export function heldIdsMigrationSql(s: string): string {
  return `
CREATE FUNCTION ${s}.hold_event_ids() RETURNS void LANGUAGE sql VOLATILE AS $f$
  SELECT pg_advisory_xact_lock_shared(${idLockClass(s)}, (${nextIdSql(s)} % ${ID_KEY_MODULUS})::int)
$f$;
${insertedEventsFunctionSql(s, true)}
${updatedEventsFunctionSql(s, true, true)}
DROP TABLE ${s}.event_marks;
ALTER TABLE ${s}.events DROP COLUMN tx;
`;
}

/** The longest a statement may take between reading the clock and writing its events. */
export const ORDER_SLACK_MS = 30_000;

/** Bisection stops when the ids left between its bounds are this few: reading them costs less than more probes. */
const BISECT_SPAN = 1000;

/** Events retention deletes per statement. */
const DELETE_CHUNK = 5000;

/** The first visible event at or after an id: what a bisection step reads. */
export interface Probe {
  id: number;
  createdAt: number;
}

/**
 * An id every event created at `t` or later is above (0 when none is
 * known), found by bisecting ids between `lo` and `hi`. Any probe created
 * before `t - ORDER_SLACK_MS` is such an id: an event with a smaller id took
 * it before that probe's statement ran, so it was created before `t`.
 */
export async function idBefore(t: number, lo: number, hi: number, probe: (id: number) => Promise<Probe | undefined>): Promise<number> {
  while (hi - lo > BISECT_SPAN) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const p = await probe(mid);
    if (p && p.createdAt < t - ORDER_SLACK_MS) lo = p.id;
    else hi = mid;
  }
  return lo;
}

/**
 * An id every event created at `t` or earlier is below, or null when none
 * is found, by bisecting ids between `lo` and `hi`: any probe created after
 * `t + ORDER_SLACK_MS`.
 */
export async function idAfter(t: number, lo: number, hi: number, probe: (id: number) => Promise<Probe | undefined>): Promise<number | null> {
  let bound: number | null = null;
  while (hi - lo > BISECT_SPAN) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const p = await probe(mid);
    if (!p) hi = mid;
    else if (p.createdAt > t + ORDER_SLACK_MS) {
      bound = p.id;
      hi = mid;
    } else lo = p.id;
  }
  return bound;
}

export class PostgresEvents {
  readonly #db: PostgresAccess;
  readonly #table: string;
  readonly #writes: string;
  /** The frontier: every event id below it is final (see the top of this file). */
  readonly #frontierSql: string;
  /** The statement of `append`. */
  readonly #appendSql: string;

  constructor(db: PostgresAccess) {
    this.#db = db;
    this.#table = db.table('events');
    this.#writes = db.table('writes');
    const s = db.schema;
    this.#appendSql = `WITH done AS MATERIALIZED (SELECT events FROM ${this.#writes} WHERE id = $1),
      held AS MATERIALIZED (SELECT ${s}.hold_event_ids() WHERE NOT EXISTS (SELECT 1 FROM done)),
      ins AS (
        INSERT INTO ${this.#table} (type, source, target, job_id, owner, payload, created_at)
        SELECT e.type, e.source, e.target, e.job_id, e.owner, e.payload, $8
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
          WITH ORDINALITY AS e(type, source, target, job_id, owner, payload, n)
        WHERE EXISTS (SELECT 1 FROM held)
        ORDER BY e.n
        RETURNING id, type, source, target, job_id, owner, payload, created_at
      ),
      w AS (INSERT INTO ${this.#writes} (id, events) SELECT $1, array_agg(id) FROM ins HAVING count(*) > 0 RETURNING pg_notify($9, ''))
      SELECT * FROM ins
      UNION ALL
      SELECT id, type, source, target, job_id, owner, payload, created_at FROM ${this.#table}
      WHERE id = ANY (coalesce((SELECT events FROM done), '{}'::bigint[]))
      ORDER BY id`;
    // A held key is the low bits of an id at or below the next one: the id is the
    // nearest at or below the next with those bits.
    this.#frontierSql = `WITH n AS (SELECT ${nextIdSql(s)} AS next)
      SELECT least(n.next, (
        SELECT min(n.next - (((n.next - l.objid::bigint) % ${ID_KEY_MODULUS}) + ${ID_KEY_MODULUS}) % ${ID_KEY_MODULUS})
        FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid::bigint = ${idLockClass(s)}
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      )) AS frontier FROM n`;
  }

  /** Read before the events it bounds, in an earlier statement: see the top of this file. */
  async #frontier(): Promise<number> {
    const [row] = await this.#db.q<{ frontier: number }>(this.#frontierSql);
    return Number(row.frontier);
  }

  /**
   * One statement, one round trip: the events, in the order given, with the
   * append's id and their ids in `writes` (see access.ts). A try after one
   * whose reply was lost finds that row and returns the events it wrote.
   * While the lost try still runs, the second waits on that row's key and
   * fails when the first commits, and tries once more.
   */
  async append(events: readonly NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const write = newWriteId();
    const column = (pick: (e: NewEvent) => string | null) => events.map(pick);
    for (let attempt = 0; ; attempt++) {
      try {
        // The time is read by each try: the events' times must follow their ids.
        const rows = await this.#db.q<EventRow>(this.#appendSql, [
          write,
          column((e) => e.type),
          column((e) => e.source),
          column((e) => e.target),
          column((e) => e.jobId),
          column((e) => e.owner),
          column((e) => e.payload),
          this.#db.now(),
          this.#db.channel,
        ]);
        if (rows.length !== events.length) throw new Error(`append ${write} wrote ${rows.length} of ${events.length} events`);
        return rows.map(rowToEvent);
      } catch (error) {
        if (attempt < 2 && (error as { constraint?: unknown }).constraint === 'writes_pkey') continue;
        throw error;
      }
    }
  }

  async list(f: EventFilter): Promise<StoredEvent[]> {
    let after = f.after;
    let before: number | null = null;
    if (f.createdFrom != null || f.createdTo != null) {
      const range = await this.#idRange(f.createdFrom, f.createdTo);
      after = Math.max(after, range.after);
      before = range.before;
    }
    const frontier = await this.#frontier();
    const where = ['id > $1', 'id < $2'];
    const values: unknown[] = [after, before == null ? frontier : Math.min(before, frontier)];
    if (f.typeLike?.length) {
      values.push(f.typeLike);
      where.push(`type LIKE ANY ($${values.length}::text[])`);
    }
    if (f.target != null) {
      values.push(f.target);
      where.push(`(target IS NULL OR target = $${values.length})`);
    }
    if (f.owner != null) {
      values.push(f.owner);
      where.push(`(owner IS NULL OR owner = $${values.length})`);
    }
    if (f.jobId != null) {
      values.push(f.jobId.replace(/\u0000/g, ''));
      where.push(`job_id = $${values.length}`);
    }
    if (f.createdFrom != null) {
      values.push(f.createdFrom);
      where.push(`created_at >= $${values.length}`);
    }
    if (f.createdTo != null) {
      values.push(f.createdTo);
      where.push(`created_at <= $${values.length}`);
    }
    values.push(f.limit);
    const rows = await this.#db.q<EventRow>(
      `SELECT id, type, source, target, job_id, owner, payload, created_at FROM ${this.#table}
       WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${values.length}`,
      values,
    );
    return rows.map(rowToEvent);
  }

  /**
   * Ids that hold every event created from `from` to `to` (either open):
   * above `after` and, when `before` is not null, below it.
   */
  async #idRange(from?: number, to?: number): Promise<{ after: number; before: number | null }> {
    const [ends] = await this.#db.q<{ lo: number | null; hi: number | null }>(`SELECT min(id) AS lo, max(id) AS hi FROM ${this.#table}`);
    if (ends.hi == null) return { after: 0, before: null };
    const probe = async (id: number): Promise<Probe | undefined> => {
      const [row] = await this.#db.q<{ id: number; created_at: number }>(
        `SELECT id, created_at FROM ${this.#table} WHERE id >= $1 ORDER BY id LIMIT 1`,
        [id],
      );
      return row && { id: row.id, createdAt: row.created_at };
    };
    const lo = (ends.lo ?? 1) - 1;
    const after = from == null ? 0 : await idBefore(from, lo, ends.hi, probe);
    const before = to == null ? null : await idAfter(to, Math.max(lo, after), ends.hi + 1, probe);
    return { after, before };
  }

  /** The newest id a reader can start after without missing an event still being written. */
  async lastId(): Promise<number> {
    return (await this.#frontier()) - 1;
  }

  /** Events of these types after `after` (up to `upTo`), counted per type and target. */
  async count(after: number, upTo: number, types: readonly string[]): Promise<Array<{ type: string; target: string | null; n: number }>> {
    if (types.length === 0) return [];
    const rows = await this.#db.q<{ type: string; target: string | null; n: string }>(
      `SELECT type, target, count(*) AS n FROM ${this.#table} WHERE id > $1 AND id <= $2 AND type = ANY($3::text[]) GROUP BY type, target`,
      [after, upTo, types],
    );
    return rows.map((r) => ({ type: r.type, target: r.target, n: Number(r.n) }));
  }

  /**
   * Deletes the events created before `before`, walking the ids from the
   * oldest up a chunk at a time. It stops at a chunk holding an event
   * created at `before + ORDER_SLACK_MS` or later: every later id was
   * created after `before`.
   */
  async delete(before: number): Promise<number> {
    let deleted = 0;
    let cursor = 0;
    for (;;) {
      const [r] = await this.#db.q<{ n: number; last: number | null; newest: number | null; seen: number }>(
        `WITH c AS MATERIALIZED (SELECT id, created_at FROM ${this.#table} WHERE id > $1 ORDER BY id LIMIT $3),
           d AS (DELETE FROM ${this.#table} WHERE id = ANY (ARRAY(SELECT id FROM c WHERE created_at < $2)) RETURNING 1)
         SELECT (SELECT count(*) FROM d)::int AS n, (SELECT max(id) FROM c) AS last,
           (SELECT max(created_at) FROM c) AS newest, (SELECT count(*) FROM c)::int AS seen`,
        [cursor, before, DELETE_CHUNK],
      );
      deleted += r.n;
      if (r.seen < DELETE_CHUNK || r.last == null || (r.newest ?? 0) >= before + ORDER_SLACK_MS) return deleted;
      cursor = r.last;
    }
  }
}
