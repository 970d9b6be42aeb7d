/**
 * Durable steps, suspended jobs and approvals on SQLite. Each method is one
 * write transaction (`BEGIN IMMEDIATE`), so its checks and writes are atomic
 * across processes: a step is stored only while the lease holds, a job is
 * resumed or failed only while it still waits for the same thing.
 */
import type { SQLInputValue } from 'node:sqlite';
import type { ApprovalDecision, ApprovalFilter, ApprovalRecord, Lease, NewApproval, WaitingJob } from '../store.ts';
import { rowToApproval, type ApprovalRow } from '../rows.ts';
import { FENCE, type SqliteAccess } from './access.ts';

export const durableMigrationSql = `
-- What a suspended job waits for (an event or a decision), as JSON; NULL for children.
ALTER TABLE jobs ADD COLUMN wait_for TEXT;
CREATE INDEX jobs_waits ON jobs (id) WHERE wait_for IS NOT NULL;
-- Results of finished steps, replayed when the job runs again.
CREATE TABLE job_steps (
  job_id TEXT NOT NULL,
  name TEXT NOT NULL,
  value TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
CREATE TABLE approvals (
  id TEXT PRIMARY KEY,
  job_id TEXT NOT NULL,
  title TEXT NOT NULL,
  details TEXT NOT NULL,
  assignee TEXT,
  status TEXT NOT NULL,
  comment TEXT,
  decided_by TEXT,
  decided_at INTEGER,
  expires_at INTEGER,
  created_at INTEGER NOT NULL
);
CREATE INDEX approvals_job ON approvals (job_id);
CREATE INDEX approvals_pending ON approvals (created_at) WHERE status = 'pending';
`;

const SELECT = `SELECT a.*, j.owner AS owner, j.agent AS agent FROM approvals a JOIN jobs j ON j.id = a.job_id`;

export class SqliteDurable {
  readonly #db: SqliteAccess;

  constructor(db: SqliteAccess) {
    this.#db = db;
  }

  getSteps(jobId: string): Map<string, string> {
    const rows = this.#db.all<{ name: string; value: string }>('SELECT name, value FROM job_steps WHERE job_id = ?', jobId);
    return new Map(rows.map((r) => [r.name, r.value]));
  }

  saveStep(lease: Lease, name: string, value: string): boolean {
    // One statement: the step is written only if the job still runs under this lease.
    const written = this.#db.run(
      `INSERT INTO job_steps (job_id, name, value, attempt, created_at)
       SELECT id, ?, ?, attempts, ? FROM jobs WHERE id = ? AND ${FENCE}
       ON CONFLICT (job_id, name) DO UPDATE SET value = excluded.value, attempt = excluded.attempt, created_at = excluded.created_at`,
      name,
      value,
      this.#db.now(),
      lease.id,
      lease.workerId,
      lease.attempt,
    );
    return written > 0;
  }

  suspend(lease: Lease, waitFor: string, approval?: NewApproval): boolean {
    const now = this.#db.now();
    return this.#db.tx(() => {
      const changed = this.#db.run(
        `UPDATE jobs SET status = 'waiting', wait_for = ?, attempts = attempts - 1, worker_id = NULL, lease_expires_at = NULL,
           heartbeat_at = NULL, updated_at = ? WHERE id = ? AND ${FENCE}`,
        waitFor,
        now,
        lease.id,
        lease.workerId,
        lease.attempt,
      );
      if (changed === 0) return false;
      if (approval) {
        this.#db.run(
          `INSERT INTO approvals (id, job_id, title, details, assignee, status, expires_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`,
          approval.id,
          lease.id,
          approval.title,
          approval.details,
          approval.assignee,
          approval.expiresAt,
          now,
        );
      }
      this.#db.note('job.waiting', lease.id);
      return true;
    });
  }

  listWaits(): WaitingJob[] {
    return this.#db
      .all<{ id: string; owner: string | null; wait_for: string }>(
        `SELECT id, owner, wait_for FROM jobs WHERE wait_for IS NOT NULL AND status = 'waiting'`,
      )
      .map((r) => ({ id: r.id, owner: r.owner, waitFor: r.wait_for }));
  }

  #resume(id: string, waitFor: string, step: { name: string; value: string }, now: number): boolean {
    const changed = this.#db.run(
      `UPDATE jobs SET status = 'pending', wait_for = NULL, run_at = ?, updated_at = ? WHERE id = ? AND status = 'waiting' AND wait_for = ?`,
      now,
      now,
      id,
      waitFor,
    );
    if (changed === 0) return false;
    const attempt = this.#db.get<{ attempts: number }>('SELECT attempts FROM jobs WHERE id = ?', id)!.attempts;
    this.#db.run(
      `INSERT INTO job_steps (job_id, name, value, attempt, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (job_id, name) DO UPDATE SET value = excluded.value, attempt = excluded.attempt, created_at = excluded.created_at`,
      id,
      step.name,
      step.value,
      attempt,
      now,
    );
    this.#db.note('job.resumed', id);
    return true;
  }

  #fail(id: string, waitFor: string, error: string, now: number): boolean {
    const changed = this.#db.run(
      `UPDATE jobs SET status = 'failed', wait_for = NULL, error = ?, finished_at = ?, updated_at = ?
       WHERE id = ? AND status = 'waiting' AND wait_for = ?`,
      error,
      now,
      now,
      id,
      waitFor,
    );
    if (changed > 0) this.#db.note('job.failed', id);
    return changed > 0;
  }

  #decide(d: ApprovalDecision): boolean {
    return (
      this.#db.run(
        `UPDATE approvals SET status = ?, decided_by = ?, comment = ?, decided_at = ? WHERE id = ? AND status = 'pending'`,
        d.status,
        d.by,
        d.comment,
        d.at,
        d.id,
      ) > 0
    );
  }

  resumeWait(id: string, waitFor: string, step: { name: string; value: string }): boolean {
    return this.#db.tx(() => this.#resume(id, waitFor, step, this.#db.now()));
  }

  failWait(id: string, waitFor: string, error: string, approval?: ApprovalDecision): boolean {
    return this.#db.tx(() => {
      if (approval && !this.#decide(approval)) return false;
      return this.#fail(id, waitFor, error, this.#db.now());
    });
  }

  getApproval(id: string): ApprovalRecord | null {
    const row = this.#db.get<ApprovalRow>(`${SELECT} WHERE a.id = ?`, id);
    return row ? rowToApproval(row) : null;
  }

  listApprovals(f: ApprovalFilter): ApprovalRecord[] {
    const where: string[] = [];
    const params: SQLInputValue[] = [];
    if (f.status?.length) {
      where.push(`a.status IN (${f.status.map(() => '?').join(',')})`);
      params.push(...f.status);
    }
    if (f.owner != null) {
      where.push('j.owner = ?');
      params.push(f.owner);
    }
    if (f.visibleTo != null) {
      where.push('(j.owner = ? OR a.assignee = ?)');
      params.push(f.visibleTo, f.visibleTo);
    }
    if (f.jobId != null) {
      where.push('a.job_id = ?');
      params.push(f.jobId);
    }
    if (f.idPrefix != null) {
      // A range on the primary key, as for job ids.
      where.push('a.id >= ? AND a.id < ?');
      params.push(f.idPrefix, `${f.idPrefix}\uffff`);
    }
    params.push(f.limit);
    return this.#db
      .all<ApprovalRow>(`${SELECT} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY a.created_at DESC, a.id DESC LIMIT ?`, ...params)
      .map(rowToApproval);
  }

  decideApproval(
    d: ApprovalDecision,
    then: { waitFor: string; step: { name: string; value: string } } | { waitFor: string; error: string },
  ): ApprovalRecord | null {
    return this.#db.tx(() => {
      const approval = this.getApproval(d.id);
      if (!approval || !this.#decide(d)) return null;
      const now = this.#db.now();
      if ('step' in then) this.#resume(approval.jobId, then.waitFor, then.step, now);
      else this.#fail(approval.jobId, then.waitFor, then.error, now);
      return this.getApproval(d.id);
    });
  }
}
