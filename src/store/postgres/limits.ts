/**
 * Rate limits and usage on PostgreSQL. Taking a start locks the keys' rows
 * (in key order, so takers never deadlock), so every worker on every machine
 * counts the same window. Starts are counted in buckets of a twentieth of the
 * window; a bucket that reaches into the window counts whole, so no window of
 * `perMs` ever holds more than `max` starts.
 */
import { randomUUID } from 'node:crypto';
import { rowToTotals, USAGE_SUMS, type TotalsRow } from '../rows.ts';
import type { Lease, RateLimitRecord, RateSlot, UsageRecord, UsageTotals } from '../store.ts';
import { FENCE, insertOnceSql, type PostgresAccess } from './access.ts';
import { bucketAt, decide, freeAt, limitedKey, pausedKey, windowStart, type KeyState } from '../rate-slots.ts';

export function limitsMigrationSql(s: string): string {
  return `
ALTER TABLE ${s}.jobs ADD COLUMN rate_key text;
ALTER TABLE ${s}.jobs ADD COLUMN budget text;
CREATE TABLE ${s}.rate_limits (
  key text PRIMARY KEY,
  max int,
  per_ms bigint,
  paused_until bigint
);
-- Starts per key in buckets of a twentieth of the window: a window is at most 21 rows.
CREATE TABLE ${s}.rate_starts (
  key text NOT NULL,
  at bigint NOT NULL,
  n int NOT NULL,
  PRIMARY KEY (key, at)
);
CREATE TABLE ${s}.job_usage (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id text COLLATE "C" NOT NULL,
  model text,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  cost_usd double precision NOT NULL,
  created_at bigint NOT NULL
);
CREATE INDEX job_usage_job ON ${s}.job_usage (job_id);
`;
}

/**
 * Migration 8: a usage record carries an id its writer chose, so a write that
 * is retried after the reply to its commit was lost (the connection dropped
 * just then) records the usage once, not twice.
 */
export function usageWritesMigrationSql(s: string): string {
  return `
ALTER TABLE ${s}.job_usage ADD COLUMN write_id text;
CREATE UNIQUE INDEX job_usage_write ON ${s}.job_usage (write_id);
`;
}

export class PostgresLimits {
  readonly #db: PostgresAccess;

  constructor(db: PostgresAccess) {
    this.#db = db;
  }

  #t(name: string): string {
    return this.#db.table(name);
  }

  async setRateLimit(key: string, limit: { max: number; perMs: number } | null): Promise<void> {
    await this.#db.tx(async (c) => {
      if (limit === null) {
        await this.#db.q(`DELETE FROM ${this.#t('rate_limits')} WHERE key = $1`, [key], c);
        await this.#db.q(`DELETE FROM ${this.#t('rate_starts')} WHERE key = $1`, [key], c);
        return;
      }
      await this.#db.q(
        `INSERT INTO ${this.#t('rate_limits')} (key, max, per_ms) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET max = excluded.max, per_ms = excluded.per_ms`,
        [key, limit.max, limit.perMs],
        c,
      );
    });
  }

  async list(): Promise<RateLimitRecord[]> {
    const rows = await this.#db.q<{ key: string; max: number | null; per_ms: string | null; paused_until: string | null }>(
      `SELECT * FROM ${this.#t('rate_limits')} ORDER BY key`,
    );
    return rows.map((r) => ({ key: r.key, max: r.max == null ? null : Number(r.max), perMs: r.per_ms == null ? null : Number(r.per_ms), pausedUntil: r.paused_until == null ? null : Number(r.paused_until) }));
  }

  take(requests: ReadonlyArray<readonly string[]>): Promise<RateSlot[]> {
    const keys = [...new Set(requests.flat())].sort();
    return this.#db.tx(async (c) => {
      // Lock the keys' rows in key order (takers never deadlock), then read each window once.
      const rows = await this.#db.q<{ key: string; max: number | null; per_ms: string | null; paused_until: string | null }>(
        `SELECT * FROM ${this.#t('rate_limits')} WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`,
        [keys],
        c,
      );
      // The time once the keys are locked: starts are recorded in the order they are let through.
      const now = this.#db.now();
      const state = new Map<string, KeyState>();
      const buckets = new Map<string, Array<{ at: number; n: number }>>();
      for (const row of rows) {
        const pausedUntil = row.paused_until != null && Number(row.paused_until) > now ? Number(row.paused_until) : null;
        if (row.max == null || row.per_ms == null) {
          if (pausedUntil == null) {
            // A pause that has passed, on a key with no limit of its own: gone.
            await this.#db.q(`DELETE FROM ${this.#t('rate_limits')} WHERE key = $1 AND max IS NULL`, [row.key], c);
          } else state.set(row.key, pausedKey(pausedUntil));
          continue;
        }
        const perMs = Number(row.per_ms);
        const held = (
          await this.#db.q<{ at: string; n: number }>(
            `WITH gone AS (DELETE FROM ${this.#t('rate_starts')} WHERE key = $1 AND at <= $2)
             SELECT at, n FROM ${this.#t('rate_starts')} WHERE key = $1 AND at > $2 ORDER BY at`,
            [row.key, windowStart(now, perMs)],
            c,
          )
        ).map((b) => ({ at: Number(b.at), n: Number(b.n) }));
        state.set(row.key, limitedKey(Number(row.max), perMs, held.reduce((sum, b) => sum + b.n, 0), pausedUntil));
        buckets.set(row.key, held);
      }
      const out = decide(requests, (key) => state.get(key), (key, s) => freeAt(s, buckets.get(key) ?? [], now));
      const upserts = [...state].filter(([, s]) => s.taken > 0);
      if (upserts.length > 0) {
        await this.#db.q(
          `INSERT INTO ${this.#t('rate_starts')} (key, at, n) SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[])
           ON CONFLICT (key, at) DO UPDATE SET n = ${this.#t('rate_starts')}.n + excluded.n`,
          [upserts.map(([k]) => k), upserts.map(([, s]) => bucketAt(now, s.bucketMs)), upserts.map(([, s]) => s.taken)],
          c,
        );
      }
      return out;
    });
  }

  async pause(keys: readonly string[], until: number): Promise<void> {
    await this.#db.q(
      `INSERT INTO ${this.#t('rate_limits')} (key, paused_until) SELECT k, $2 FROM unnest($1::text[]) AS k
       ON CONFLICT (key) DO UPDATE SET paused_until = greatest(coalesce(${this.#t('rate_limits')}.paused_until, 0), excluded.paused_until)`,
      [[...new Set(keys)].sort(), until],
    );
  }

  defer(lease: Lease, runAt: number): Promise<boolean> {
    return this.#db.tx(async (c) => {
      const rows = await this.#db.q(
        `UPDATE ${this.#t('jobs')} SET status = 'pending', attempts = attempts - 1, worker_id = NULL, lease_expires_at = NULL,
           started_at = NULL, heartbeat_at = NULL, run_at = $4, updated_at = $5 WHERE id = $1 AND ${FENCE} RETURNING id`,
        [lease.id, lease.workerId, lease.attempt, runAt, this.#db.now()],
        c,
      );
      if (rows.length > 0) await this.#db.notify(c);
      return rows.length > 0;
    });
  }

  async addUsage(lease: Lease, u: UsageRecord): Promise<boolean> {
    const usage = this.#t('job_usage');
    const rows = await this.#db.q(
      insertOnceSql(
        `INSERT INTO ${usage} (job_id, model, input_tokens, output_tokens, cost_usd, created_at, write_id)
         SELECT id, $4, $5, $6, $7, $8, $9 FROM ${this.#t('jobs')} WHERE id = $1 AND ${FENCE}
         ON CONFLICT (write_id) DO NOTHING`,
        'job_id',
        usage,
        'write_id = $9',
      ),
      [lease.id, lease.workerId, lease.attempt, u.model, u.inputTokens, u.outputTokens, u.costUsd, this.#db.now(), randomUUID()],
    );
    return rows.length > 0;
  }

  async jobUsage(jobId: string, tree: boolean): Promise<UsageTotals> {
    if (!tree) {
      const [row] = await this.#db.q<TotalsRow>(`SELECT ${USAGE_SUMS} FROM ${this.#t('job_usage')} u WHERE u.job_id = $1`, [jobId]);
      return rowToTotals(row);
    }
    const [row] = await this.#db.q<TotalsRow>(
      `WITH RECURSIVE t(id) AS (SELECT $1::text COLLATE "C" UNION SELECT j.id FROM ${this.#t('jobs')} j JOIN t ON j.parent_id = t.id)
       SELECT ${USAGE_SUMS} FROM ${this.#t('job_usage')} u JOIN t ON u.job_id = t.id`,
      [jobId],
    );
    return rowToTotals(row);
  }

  async usageBy(group: 'agent' | 'owner', owner?: string): Promise<Array<UsageTotals & { name: string | null }>> {
    const column = group === 'agent' ? 'j.agent' : 'j.owner';
    const where = owner == null ? '' : 'WHERE j.owner = $1';
    const rows = await this.#db.q<TotalsRow & { name: string | null }>(
      `SELECT ${column} AS name, ${USAGE_SUMS} FROM ${this.#t('job_usage')} u JOIN ${this.#t('jobs')} j ON j.id = u.job_id ${where} GROUP BY ${column} ORDER BY ${column}`,
      owner == null ? [] : [owner],
    );
    return rows.map((r) => ({ name: r.name, ...rowToTotals(r) }));
  }

  async budgetChain(jobId: string): Promise<Array<{ jobId: string; budget: string }>> {
    const rows = await this.#db.q<{ id: string; budget: string }>(
      `WITH RECURSIVE a(id, parent_id, budget, depth) AS (
         SELECT id, parent_id, budget, 0 FROM ${this.#t('jobs')} WHERE id = $1
         UNION ALL SELECT j.id, j.parent_id, j.budget, a.depth + 1 FROM ${this.#t('jobs')} j JOIN a ON j.id = a.parent_id WHERE a.depth < 100)
       SELECT id, budget FROM a WHERE budget IS NOT NULL ORDER BY depth`,
      [jobId],
    );
    return rows.map((r) => ({ jobId: r.id, budget: r.budget }));
  }
}
