/**
 * Rate limits and usage on SQLite. A start is taken in a write transaction
 * (`BEGIN IMMEDIATE`), so processes on one file count the same window. Starts
 * are counted in buckets of a twentieth of the window; a bucket that reaches
 * into the window counts whole, so the count is never less than the truth and
 * no window of `perMs` ever holds more than `max` starts.
 */
import { rowToTotals, USAGE_SUMS, type TotalsRow } from '../rows.ts';
import type { Lease, RateLimitRecord, RateSlot, UsageRecord, UsageTotals } from '../store.ts';
import { FENCE, type SqliteAccess } from './access.ts';
import { bucketAt, decide, freeAt, limitedKey, pausedKey, windowStart, type KeyState } from '../rate-slots.ts';

export const limitsMigrationSql = `
ALTER TABLE jobs ADD COLUMN rate_key TEXT;
ALTER TABLE jobs ADD COLUMN budget TEXT;
CREATE TABLE rate_limits (
  key TEXT PRIMARY KEY,
  max INTEGER,
  per_ms INTEGER,
  paused_until INTEGER
);
-- Starts per key in buckets of a twentieth of the window: a window is at most 21 rows.
CREATE TABLE rate_starts (
  key TEXT NOT NULL,
  at INTEGER NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY (key, at)
) WITHOUT ROWID;
CREATE TABLE job_usage (
  id INTEGER PRIMARY KEY,
  job_id TEXT NOT NULL,
  model TEXT,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX job_usage_job ON job_usage (job_id);
`;

export class SqliteLimits {
  readonly #db: SqliteAccess;

  constructor(db: SqliteAccess) {
    this.#db = db;
  }

  setRateLimit(key: string, limit: { max: number; perMs: number } | null): void {
    this.#db.tx(() => {
      if (limit === null) {
        this.#db.run('DELETE FROM rate_limits WHERE key = ?', key);
        this.#db.run('DELETE FROM rate_starts WHERE key = ?', key);
        return;
      }
      this.#db.run(
        `INSERT INTO rate_limits (key, max, per_ms) VALUES (?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET max = excluded.max, per_ms = excluded.per_ms`,
        key,
        limit.max,
        limit.perMs,
      );
    });
  }

  list(): RateLimitRecord[] {
    return this.#db
      .all<{ key: string; max: number | null; per_ms: number | null; paused_until: number | null }>('SELECT * FROM rate_limits ORDER BY key')
      .map((r) => ({ key: r.key, max: r.max == null ? null : Number(r.max), perMs: r.per_ms == null ? null : Number(r.per_ms), pausedUntil: r.paused_until == null ? null : Number(r.paused_until) }));
  }

  take(requests: ReadonlyArray<readonly string[]>): RateSlot[] {
    return this.#db.tx(() => {
      // The time once the write lock is held: starts are recorded in the order they are let through.
      const now = this.#db.now();
      const state = new Map<string, KeyState | null>();
      const load = (key: string): KeyState | null => {
        if (state.has(key)) return state.get(key)!;
        const row = this.#db.get<{ max: number | null; per_ms: number | null; paused_until: number | null }>('SELECT * FROM rate_limits WHERE key = ?', key);
        let s: KeyState | null = null;
        if (row) {
          const pausedUntil = row.paused_until != null && Number(row.paused_until) > now ? Number(row.paused_until) : null;
          if (row.max == null || row.per_ms == null) {
            // A pause that has passed, on a key with no limit of its own: gone.
            if (pausedUntil == null) this.#db.run('DELETE FROM rate_limits WHERE key = ? AND max IS NULL', key);
            else s = pausedKey(pausedUntil);
          } else {
            const perMs = Number(row.per_ms);
            this.#db.run('DELETE FROM rate_starts WHERE key = ? AND at <= ?', key, windowStart(now, perMs));
            const count = Number(this.#db.get<{ n: number | null }>('SELECT sum(n) AS n FROM rate_starts WHERE key = ?', key)!.n ?? 0);
            s = limitedKey(Number(row.max), perMs, count, pausedUntil);
          }
        }
        state.set(key, s);
        return s;
      };
      const results = decide(requests, load, (key, s) => {
        const buckets = this.#db.all<{ at: number; n: number }>('SELECT at, n FROM rate_starts WHERE key = ? ORDER BY at', key);
        return freeAt(s, buckets.map((b) => ({ at: Number(b.at), n: Number(b.n) })), now);
      });
      for (const [key, s] of state) {
        if (!s || s.taken === 0) continue;
        this.#db.run('INSERT INTO rate_starts (key, at, n) VALUES (?, ?, ?) ON CONFLICT (key, at) DO UPDATE SET n = n + excluded.n', key, bucketAt(now, s.bucketMs), s.taken);
      }
      return results;
    });
  }

  pause(keys: readonly string[], until: number): void {
    this.#db.tx(() => {
      for (const key of new Set(keys)) {
        this.#db.run(
          `INSERT INTO rate_limits (key, paused_until) VALUES (?, ?)
           ON CONFLICT (key) DO UPDATE SET paused_until = max(coalesce(paused_until, 0), excluded.paused_until)`,
          key,
          until,
        );
      }
    });
  }

  defer(lease: Lease, runAt: number): boolean {
    const now = this.#db.now();
    return this.#db.tx(() => {
      const changed = this.#db.run(
        `UPDATE jobs SET status = 'pending', attempts = attempts - 1, worker_id = NULL, lease_expires_at = NULL,
           started_at = NULL, heartbeat_at = NULL, run_at = ?, updated_at = ? WHERE id = ? AND ${FENCE}`,
        runAt,
        now,
        lease.id,
        lease.workerId,
        lease.attempt,
      );
      if (changed > 0) this.#db.note('job.released', lease.id);
      return changed > 0;
    });
  }

  addUsage(lease: Lease, u: UsageRecord): boolean {
    // One statement: counted only if the job still runs under this lease.
    const written = this.#db.run(
      `INSERT INTO job_usage (job_id, model, input_tokens, output_tokens, cost_usd, created_at)
       SELECT id, ?, ?, ?, ?, ? FROM jobs WHERE id = ? AND ${FENCE}`,
      u.model,
      u.inputTokens,
      u.outputTokens,
      u.costUsd,
      this.#db.now(),
      lease.id,
      lease.workerId,
      lease.attempt,
    );
    return written > 0;
  }

  jobUsage(jobId: string, tree: boolean): UsageTotals {
    if (!tree) return rowToTotals(this.#db.get<TotalsRow>(`SELECT ${USAGE_SUMS} FROM job_usage u WHERE u.job_id = ?`, jobId));
    return rowToTotals(
      this.#db.get<TotalsRow>(
        `WITH RECURSIVE t(id) AS (SELECT ? UNION SELECT j.id FROM jobs j JOIN t ON j.parent_id = t.id)
         SELECT ${USAGE_SUMS} FROM job_usage u JOIN t ON u.job_id = t.id`,
        jobId,
      ),
    );
  }

  usageBy(group: 'agent' | 'owner', owner?: string): Array<UsageTotals & { name: string | null }> {
    const column = group === 'agent' ? 'j.agent' : 'j.owner';
    const where = owner == null ? '' : 'WHERE j.owner = ?';
    return this.#db
      .all<TotalsRow & { name: string | null }>(
        `SELECT ${column} AS name, ${USAGE_SUMS} FROM job_usage u JOIN jobs j ON j.id = u.job_id ${where} GROUP BY ${column} ORDER BY ${column}`,
        ...(owner == null ? [] : [owner]),
      )
      .map((r) => ({ name: r.name, ...rowToTotals(r) }));
  }

  budgetChain(jobId: string): Array<{ jobId: string; budget: string }> {
    return this.#db.all<{ id: string; budget: string }>(
      `WITH RECURSIVE a(id, parent_id, budget, depth) AS (
         SELECT id, parent_id, budget, 0 FROM jobs WHERE id = ?
         UNION ALL SELECT j.id, j.parent_id, j.budget, a.depth + 1 FROM jobs j JOIN a ON j.id = a.parent_id WHERE a.depth < 100)
       SELECT id, budget FROM a WHERE budget IS NOT NULL ORDER BY depth`,
      jobId,
    ).map((r) => ({ jobId: r.id, budget: r.budget }));
  }
}
