/** What the SQLite store's parts (schedules, users, durable steps, limits) need of it. */
import type { SQLInputValue } from 'node:sqlite';
import type { InsertedJob, JobEventType, NewJob } from '../store.ts';

export interface SqliteAccess {
  all<T>(sql: string, ...params: SQLInputValue[]): T[];
  get<T>(sql: string, ...params: SQLInputValue[]): T | undefined;
  run(sql: string, ...params: SQLInputValue[]): number;
  /** A write transaction (`BEGIN IMMEDIATE`), its noted job events written before it commits. */
  tx<T>(fn: () => T): T;
  now(): number;
  /** Notes a job event of the current transaction. */
  note(type: JobEventType, ids: string | readonly string[]): void;
  /** Inserts one job (or returns the one with its key), inside the current transaction. */
  insertJob(job: NewJob, now: number): InsertedJob;
}

/** The lease check of a write by a job's worker: its worker id, then its attempt. */
export const FENCE = `status = 'running' AND worker_id = ? AND attempts = ?`;
