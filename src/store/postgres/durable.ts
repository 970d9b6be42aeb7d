/**
 * Durable steps, suspended jobs and approvals on PostgreSQL. Each write
 * checks what it expects in its WHERE clause (the lease for a handler's
 * writes, the same wait for a resume), so concurrent workers and deciders
 * change a job once. Job events come from the jobs table's triggers.
 */
import type pg from 'pg';
import type { ApprovalDecision, ApprovalFilter, ApprovalRecord, Lease, NewApproval, WaitingJob } from '../store.ts';
import { rowToApproval, type ApprovalRow } from '../rows.ts';
import { FENCE, type PostgresAccess, type Queryable } from './access.ts';

export function durableMigrationSql(s: string): string {
  return `
ALTER TABLE ${s}.jobs ADD COLUMN wait_for text;
CREATE INDEX jobs_waits ON ${s}.jobs (id) WHERE wait_for IS NOT NULL;
CREATE TABLE ${s}.job_steps (
  job_id text COLLATE "C" NOT NULL,
  name text NOT NULL,
  value text NOT NULL,
  attempt int NOT NULL,
  created_at bigint NOT NULL,
  PRIMARY KEY (job_id, name)
);
CREATE TABLE ${s}.approvals (
  id text PRIMARY KEY,
  job_id text COLLATE "C" NOT NULL,
  title text NOT NULL,
  details text NOT NULL,
  assignee text,
  status text NOT NULL,
  comment text,
  decided_by text,
  decided_at bigint,
  expires_at bigint,
  created_at bigint NOT NULL
);
CREATE INDEX approvals_job ON ${s}.approvals (job_id);
CREATE INDEX approvals_pending ON ${s}.approvals (created_at) WHERE status = 'pending';
`;
}

export class PostgresDurable {
  readonly #db: PostgresAccess;

  constructor(db: PostgresAccess) {
    this.#db = db;
  }

  get #jobs(): string {
    return this.#db.table('jobs');
  }
  get #steps(): string {
    return this.#db.table('job_steps');
  }
  get #approvals(): string {
    return this.#db.table('approvals');
  }
  get #select(): string {
    return `SELECT a.*, j.owner, j.agent FROM ${this.#approvals} a JOIN ${this.#jobs} j ON j.id = a.job_id`;
  }

  async getSteps(jobId: string): Promise<Map<string, string>> {
    const rows = await this.#db.q<{ name: string; value: string }>(`SELECT name, value FROM ${this.#steps} WHERE job_id = $1`, [jobId]);
    return new Map(rows.map((r) => [r.name, r.value]));
  }

  async saveStep(lease: Lease, name: string, value: string): Promise<boolean> {
    // One statement: the step is written only if the job still runs under this lease.
    const rows = await this.#db.q(
      `INSERT INTO ${this.#steps} (job_id, name, value, attempt, created_at)
       SELECT id, $4, $5, attempts, $6 FROM ${this.#jobs} WHERE id = $1 AND ${FENCE} FOR SHARE
       ON CONFLICT (job_id, name) DO UPDATE SET value = excluded.value, attempt = excluded.attempt, created_at = excluded.created_at
       RETURNING job_id`,
      [lease.id, lease.workerId, lease.attempt, name, value, this.#db.now()],
    );
    return rows.length > 0;
  }

  async suspend(lease: Lease, waitFor: string, approval?: NewApproval): Promise<boolean> {
    const now = this.#db.now();
    return this.#db.tx(async (c) => {
      const rows = await this.#db.q(
        `UPDATE ${this.#jobs} SET status = 'waiting', wait_for = $4, attempts = attempts - 1, worker_id = NULL,
           lease_expires_at = NULL, heartbeat_at = NULL, updated_at = $5
         WHERE id = $1 AND ${FENCE} RETURNING id`,
        [lease.id, lease.workerId, lease.attempt, waitFor, now],
        c,
      );
      if (rows.length === 0) return false;
      if (approval) {
        await this.#db.q(
          `INSERT INTO ${this.#approvals} (id, job_id, title, details, assignee, status, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7)`,
          [approval.id, lease.id, approval.title, approval.details, approval.assignee, approval.expiresAt, now],
          c,
        );
      }
      await this.#db.notify(c);
      return true;
    });
  }

  async listWaits(): Promise<WaitingJob[]> {
    const rows = await this.#db.q<{ id: string; owner: string | null; wait_for: string }>(
      `SELECT id, owner, wait_for FROM ${this.#jobs} WHERE wait_for IS NOT NULL AND status = 'waiting'`,
    );
    return rows.map((r) => ({ id: r.id, owner: r.owner, waitFor: r.wait_for }));
  }

  async #resume(c: pg.PoolClient, id: string, waitFor: string, step: { name: string; value: string }, now: number): Promise<boolean> {
    const rows = await this.#db.q<{ attempts: number }>(
      `UPDATE ${this.#jobs} SET status = 'pending', wait_for = NULL, run_at = $3, updated_at = $3
       WHERE id = $1 AND status = 'waiting' AND wait_for = $2 RETURNING attempts`,
      [id, waitFor, now],
      c,
    );
    if (rows.length === 0) return false;
    await this.#db.q(
      `INSERT INTO ${this.#steps} (job_id, name, value, attempt, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (job_id, name) DO UPDATE SET value = excluded.value, attempt = excluded.attempt, created_at = excluded.created_at`,
      [id, step.name, step.value, rows[0].attempts, now],
      c,
    );
    return true;
  }

  async #fail(c: pg.PoolClient, id: string, waitFor: string, error: string, now: number): Promise<boolean> {
    const rows = await this.#db.q(
      `UPDATE ${this.#jobs} SET status = 'failed', wait_for = NULL, error = $3, finished_at = $4, updated_at = $4
       WHERE id = $1 AND status = 'waiting' AND wait_for = $2 RETURNING id`,
      [id, waitFor, error, now],
      c,
    );
    return rows.length > 0;
  }

  async #decide(c: pg.PoolClient, d: ApprovalDecision): Promise<boolean> {
    const rows = await this.#db.q(
      `UPDATE ${this.#approvals} SET status = $2, decided_by = $3, comment = $4, decided_at = $5 WHERE id = $1 AND status = 'pending' RETURNING id`,
      [d.id, d.status, d.by, d.comment, d.at],
      c,
    );
    return rows.length > 0;
  }

  resumeWait(id: string, waitFor: string, step: { name: string; value: string }): Promise<boolean> {
    return this.#db.tx(async (c) => {
      const done = await this.#resume(c, id, waitFor, step, this.#db.now());
      if (done) await this.#db.notify(c);
      return done;
    });
  }

  failWait(id: string, waitFor: string, error: string, approval?: ApprovalDecision): Promise<boolean> {
    return this.#db.tx(async (c) => {
      if (approval && !(await this.#decide(c, approval))) return false;
      const done = await this.#fail(c, id, waitFor, error, this.#db.now());
      if (done) await this.#db.notify(c);
      return done;
    });
  }

  async getApproval(id: string, on?: Queryable): Promise<ApprovalRecord | null> {
    const [row] = await this.#db.q<ApprovalRow>(`${this.#select} WHERE a.id = $1`, [id], on);
    return row ? rowToApproval(row) : null;
  }

  async listApprovals(f: ApprovalFilter): Promise<ApprovalRecord[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    if (f.status?.length) {
      values.push(f.status);
      where.push(`a.status = ANY($${values.length}::text[])`);
    }
    if (f.owner != null) {
      values.push(f.owner);
      where.push(`j.owner = $${values.length}`);
    }
    if (f.visibleTo != null) {
      values.push(f.visibleTo);
      where.push(`(j.owner = $${values.length} OR a.assignee = $${values.length})`);
    }
    if (f.jobId != null) {
      values.push(f.jobId);
      where.push(`a.job_id = $${values.length}`);
    }
    if (f.idPrefix != null) {
      values.push(f.idPrefix);
      where.push(`starts_with(a.id, $${values.length})`);
    }
    values.push(f.limit);
    const rows = await this.#db.q<ApprovalRow>(
      `${this.#select} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY a.created_at DESC, a.id DESC LIMIT $${values.length}`,
      values,
    );
    return rows.map(rowToApproval);
  }

  decideApproval(
    d: ApprovalDecision,
    then: { waitFor: string; step: { name: string; value: string } } | { waitFor: string; error: string },
  ): Promise<ApprovalRecord | null> {
    return this.#db.tx(async (c) => {
      const approval = await this.getApproval(d.id, c);
      if (!approval || !(await this.#decide(c, d))) return null;
      const now = this.#db.now();
      if ('step' in then) await this.#resume(c, approval.jobId, then.waitFor, then.step, now);
      else await this.#fail(c, approval.jobId, then.waitFor, then.error, now);
      await this.#db.notify(c);
      return this.getApproval(d.id, c);
    });
  }
}
