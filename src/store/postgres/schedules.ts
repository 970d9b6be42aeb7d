/**
 * Schedule storage on PostgreSQL, called from PostgresStore.
 *
 * A firing locks its schedule row (`FOR UPDATE`) in the transaction that
 * submits the job and moves the next run on: schedulers on other hosts that
 * read the same due row wait for the lock, then find a newer revision and
 * step back. Edits check the revision they read in their UPDATE's WHERE, and
 * a name taken at the same moment by another process is caught by the unique
 * index (SQLSTATE 23505) and reported as a ConflictError.
 */
import type pg from 'pg';
import { insertOnceSql, type PostgresAccess } from './access.ts';
import { ConflictError } from '../../errors.ts';
import { isFinished } from '../../job.ts';
import { rowToSchedule, scheduleConflict, type ScheduleRow } from '../schedule-rows.ts';
import type { FiringResult, InsertedJob, NewJob, ScheduleChanges, ScheduleFiring, ScheduleRecord } from '../store.ts';

/** The schedules table, in the schema `s` (already quoted). */
export function schedulesMigrationSql(s: string): string {
  return `
CREATE TABLE ${s}.schedules (
  id text COLLATE "C" PRIMARY KEY,
  name text NOT NULL UNIQUE,
  description text,
  cron text,
  interval_ms bigint CHECK (interval_ms IS NULL OR interval_ms > 0),
  timezone text NOT NULL,
  job text NOT NULL,
  enabled boolean NOT NULL,
  overlap text NOT NULL CHECK (overlap IN ('allow','skip')),
  next_run_at bigint,
  last_run_at bigint,
  last_job_id text COLLATE "C",
  revision integer NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  CHECK ((cron IS NULL) <> (interval_ms IS NULL))
);
-- The scheduler's one question: which enabled schedules are due.
CREATE INDEX schedules_due ON ${s}.schedules (next_run_at) WHERE enabled AND next_run_at IS NOT NULL;
`;
}

/** What the schedule SQL needs from the store beyond the common access. */
export interface ScheduleAccess extends PostgresAccess {
  /** Inserts one job without parent or dependencies (or returns the one holding its key), on `c`. */
  insertJob(c: pg.PoolClient, job: NewJob, now: number): Promise<InsertedJob>;
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}

export class PostgresSchedules {
  readonly #db: ScheduleAccess;

  constructor(db: ScheduleAccess) {
    this.#db = db;
  }

  get #select(): string {
    return `SELECT s.*, j.status AS last_job_status FROM ${this.#db.table('schedules')} s
      LEFT JOIN ${this.#db.table('jobs')} j ON j.id = s.last_job_id`;
  }

  async get(idOrName: string): Promise<ScheduleRecord | null> {
    const rows = await this.#db.q<ScheduleRow>(
      `${this.#select} WHERE s.id = $1 OR s.name = $1 ORDER BY (s.id = $1) DESC LIMIT 1`,
      [idOrName],
    );
    return rows[0] ? rowToSchedule(rows[0]) : null;
  }

  async list(): Promise<ScheduleRecord[]> {
    return (await this.#db.q<ScheduleRow>(`${this.#select} ORDER BY s.name COLLATE "C"`)).map(rowToSchedule);
  }

  async save(changes: ScheduleChanges): Promise<void> {
    const t = this.#db.table('schedules');
    const now = this.#db.now();
    await this.#db.tx(async (c, attempt) => {
      for (const { id, expectedRevision } of changes.remove) {
        const gone = await this.#db.q(`DELETE FROM ${t} WHERE id = $1 AND revision = $2 RETURNING id`, [id, expectedRevision], c);
        if (gone.length > 0) continue;
        // Tried again, and gone: an earlier try deleted it, and only its reply was lost.
        const left = attempt === 0 ? [] : await this.#db.q(`SELECT id FROM ${t} WHERE id = $1`, [id], c);
        if (attempt === 0 || left.length > 0) throw new ConflictError(scheduleConflict(id), { id });
      }
      for (const { schedule: s, expectedRevision } of changes.put) {
        const [taken] = await this.#db.q<{ id: string }>(`SELECT id FROM ${t} WHERE name = $1 AND id <> $2`, [s.name, s.id], c);
        if (taken) throw new ConflictError(`a schedule named ${s.name} already exists`, { id: taken.id, name: s.name });
        const values = [s.name, s.description, s.cron, s.intervalMs, s.timezone, s.job, s.enabled, s.overlap, s.nextRunAt, s.id, now];
        try {
          if (expectedRevision === null) {
            // An earlier try's row has the same id, its first revision and the same time.
            const inserted = await this.#db.q(
              insertOnceSql(
                `INSERT INTO ${t} (name, description, cron, interval_ms, timezone, job, enabled, overlap, next_run_at,
                   id, revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11)
                 ON CONFLICT (id) DO NOTHING`,
                'id',
                t,
                'id = $10 AND revision = 1 AND created_at = $11',
              ),
              values,
              c,
            );
            if (inserted.length === 0) throw new ConflictError(scheduleConflict(s.name), { id: s.id });
          } else {
            const changed = await this.#db.q(
              `UPDATE ${t} SET name = $1, description = $2, cron = $3, interval_ms = $4, timezone = $5, job = $6,
                 enabled = $7, overlap = $8, next_run_at = $9, revision = revision + 1, updated_at = $11
               WHERE id = $10 AND revision = $12 RETURNING id`,
              [...values, expectedRevision],
              c,
            );
            if (changed.length === 0) throw new ConflictError(scheduleConflict(s.name), { id: s.id });
          }
        } catch (error) {
          if (isUniqueViolation(error)) throw new ConflictError(`a schedule named ${s.name} already exists`, { name: s.name });
          throw error;
        }
      }
      await this.#db.notify(c);
    });
  }

  async due(now: number, limit: number): Promise<ScheduleRecord[]> {
    return (
      await this.#db.q<ScheduleRow>(
        `${this.#select} WHERE s.enabled AND s.next_run_at IS NOT NULL AND s.next_run_at <= $1
         ORDER BY s.next_run_at, s.id LIMIT $2`,
        [now, limit],
      )
    ).map(rowToSchedule);
  }

  async nextRunAt(): Promise<number | null> {
    const [row] = await this.#db.q<{ t: string | null }>(
      `SELECT min(next_run_at) AS t FROM ${this.#db.table('schedules')} WHERE enabled AND next_run_at IS NOT NULL`,
    );
    return row?.t == null ? null : Number(row.t);
  }

  async fire(f: ScheduleFiring): Promise<FiringResult> {
    const t = this.#db.table('schedules');
    const jobs = this.#db.table('jobs');
    const now = this.#db.now();
    return this.#db.tx(async (c): Promise<FiringResult> => {
      // The row lock is the claim: a second scheduler waits here, then sees the new revision.
      const [locked] = await this.#db.q<{ id: string }>(`SELECT id FROM ${t} WHERE id = $1 FOR UPDATE`, [f.scheduleId], c);
      if (!locked) return { outcome: 'lost' };
      const [row] = await this.#db.q<ScheduleRow>(`${this.#select} WHERE s.id = $1`, [f.scheduleId], c);
      const s = rowToSchedule(row);
      const scheduled = f.expectedRevision !== undefined;
      if (scheduled) {
        if (s.revision !== f.expectedRevision || !s.enabled) return { outcome: 'lost' };
        if (s.overlap === 'skip' && s.lastJobId && s.lastJobStatus && !isFinished(s.lastJobStatus)) {
          // The previous job's row is locked too, so it cannot finish unseen while this decides.
          const [still] = await this.#db.q<{ status: string }>(
            `SELECT status FROM ${jobs} WHERE id = $1 FOR SHARE`,
            [s.lastJobId],
            c,
          );
          if (still && !isFinished(still.status as never)) {
            await this.#db.q(`UPDATE ${t} SET next_run_at = $1, revision = revision + 1 WHERE id = $2`, [f.nextRunAt ?? null, s.id], c);
            return { outcome: 'skipped', runningJobId: s.lastJobId };
          }
        }
      }
      const inserted = await this.#db.insertJob(c, f.job, now);
      if (scheduled) {
        await this.#db.q(
          `UPDATE ${t} SET last_run_at = $1, last_job_id = $2, next_run_at = $3, revision = revision + 1 WHERE id = $4`,
          [f.firedAt, inserted.job.id, f.nextRunAt ?? null, s.id],
          c,
        );
      } else {
        await this.#db.q(
          `UPDATE ${t} SET last_run_at = $1, last_job_id = $2, revision = revision + 1 WHERE id = $3`,
          [f.firedAt, inserted.job.id, s.id],
          c,
        );
      }
      await this.#db.notify(c);
      return { outcome: 'fired', job: inserted.job, created: inserted.created };
    });
  }
}
