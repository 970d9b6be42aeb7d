/**
 * Schedule storage on SQLite. Called from SqliteStore, inside its write
 * transactions (`BEGIN IMMEDIATE`), so each read-check-write below is atomic
 * across processes: the firing claim, the revision checks, the name check.
 */
import type { SQLInputValue } from 'node:sqlite';
import { ConflictError } from '../../errors.ts';
import { isFinished } from '../../job.ts';
import { rowToSchedule, scheduleConflict, type ScheduleRow } from '../schedule-rows.ts';
import type { FiringResult, ScheduleChanges, ScheduleFiring, ScheduleRecord } from '../store.ts';
import type { SqliteAccess } from './access.ts';

const SELECT = `SELECT s.*, j.status AS last_job_status FROM schedules s LEFT JOIN jobs j ON j.id = s.last_job_id`;

export class SqliteSchedules {
  readonly #db: SqliteAccess;

  constructor(db: SqliteAccess) {
    this.#db = db;
  }

  get(idOrName: string): ScheduleRecord | null {
    const row =
      this.#db.get<ScheduleRow>(`${SELECT} WHERE s.id = ?`, idOrName) ??
      this.#db.get<ScheduleRow>(`${SELECT} WHERE s.name = ?`, idOrName);
    return row ? rowToSchedule(row) : null;
  }

  list(): ScheduleRecord[] {
    return this.#db.all<ScheduleRow>(`${SELECT} ORDER BY s.name`).map(rowToSchedule);
  }

  save(changes: ScheduleChanges): void {
    const now = this.#db.now();
    this.#db.tx(() => {
      for (const { id, expectedRevision } of changes.remove) {
        if (this.#db.run('DELETE FROM schedules WHERE id = ? AND revision = ?', id, expectedRevision) === 0) {
          throw new ConflictError(scheduleConflict(id), { id });
        }
      }
      for (const { schedule: s, expectedRevision } of changes.put) {
        const taken = this.#db.get<{ id: string }>('SELECT id FROM schedules WHERE name = ? AND id <> ?', s.name, s.id);
        if (taken) throw new ConflictError(`a schedule named ${s.name} already exists`, { id: taken.id, name: s.name });
        const values: SQLInputValue[] = [
          s.name,
          s.description,
          s.cron,
          s.intervalMs,
          s.timezone,
          s.job,
          s.enabled ? 1 : 0,
          s.overlap,
          s.nextRunAt,
        ];
        if (expectedRevision === null) {
          if (this.#db.get('SELECT 1 AS x FROM schedules WHERE id = ?', s.id)) {
            throw new ConflictError(scheduleConflict(s.name), { id: s.id });
          }
          this.#db.run(
            `INSERT INTO schedules (name, description, cron, interval_ms, timezone, job, enabled, overlap, next_run_at,
               id, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
            ...values,
            s.id,
            now,
            now,
          );
        } else {
          const changed = this.#db.run(
            `UPDATE schedules SET name = ?, description = ?, cron = ?, interval_ms = ?, timezone = ?, job = ?,
               enabled = ?, overlap = ?, next_run_at = ?, revision = revision + 1, updated_at = ?
             WHERE id = ? AND revision = ?`,
            ...values,
            now,
            s.id,
            expectedRevision,
          );
          if (changed === 0) throw new ConflictError(scheduleConflict(s.name), { id: s.id });
        }
      }
    });
  }

  due(now: number, limit: number): ScheduleRecord[] {
    return this.#db
      .all<ScheduleRow>(
        `${SELECT} WHERE s.enabled = 1 AND s.next_run_at IS NOT NULL AND s.next_run_at <= ? ORDER BY s.next_run_at, s.id LIMIT ?`,
        now,
        limit,
      )
      .map(rowToSchedule);
  }

  nextRunAt(): number | null {
    const row = this.#db.get<{ t: number | null }>(
      'SELECT min(next_run_at) AS t FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL',
    );
    return row?.t == null ? null : Number(row.t);
  }

  fire(f: ScheduleFiring): FiringResult {
    const now = this.#db.now();
    return this.#db.tx((): FiringResult => {
      const row = this.#db.get<ScheduleRow>(`${SELECT} WHERE s.id = ?`, f.scheduleId);
      if (!row) return { outcome: 'lost' };
      const s = rowToSchedule(row);
      const scheduled = f.expectedRevision !== undefined;
      if (scheduled) {
        if (s.revision !== f.expectedRevision || !s.enabled) return { outcome: 'lost' };
        if (s.overlap === 'skip' && s.lastJobId && s.lastJobStatus && !isFinished(s.lastJobStatus)) {
          this.#db.run(
            'UPDATE schedules SET next_run_at = ?, revision = revision + 1 WHERE id = ?',
            f.nextRunAt ?? null,
            s.id,
          );
          return { outcome: 'skipped', runningJobId: s.lastJobId };
        }
      }
      const inserted = this.#db.insertJob(f.job, now);
      if (scheduled) {
        this.#db.run(
          'UPDATE schedules SET last_run_at = ?, last_job_id = ?, next_run_at = ?, revision = revision + 1 WHERE id = ?',
          f.firedAt,
          inserted.job.id,
          f.nextRunAt ?? null,
          s.id,
        );
      } else {
        this.#db.run(
          'UPDATE schedules SET last_run_at = ?, last_job_id = ?, revision = revision + 1 WHERE id = ?',
          f.firedAt,
          inserted.job.id,
          s.id,
        );
      }
      return { outcome: 'fired', job: inserted.job, created: inserted.created };
    });
  }
}
