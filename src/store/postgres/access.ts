/** What the PostgreSQL store's parts (schedules, events, users, durable steps, limits) need of it. */
import type pg from 'pg';
import { encodeTime } from 'ulidx';
import { idFactory } from '../../ids.ts';

export type Queryable = pg.Pool | pg.PoolClient;

export interface PostgresAccess {
  /** agentq's schema, quoted. */
  schema: string;
  /** A table's name in agentq's schema, quoted. */
  table(name: string): string;
  /**
   * One statement: on `on` (inside a transaction), or on its own, retried
   * while the server is away.
   */
  q<T extends Record<string, any>>(text: string, values?: unknown[], on?: Queryable): Promise<T[]>;
  /**
   * A transaction, tried again while the server is away; `attempt` counts
   * from 0, and a later one may follow an attempt that committed but whose
   * reply was lost.
   */
  tx<T>(fn: (c: pg.PoolClient, attempt: number) => Promise<T>): Promise<T>;
  /** Wakes listeners in every process when the transaction commits. */
  notify(c: Queryable): Promise<void>;
  /** The channel `notify` notifies on, for statements that notify by themselves. */
  channel: string;
  now(): number;
}

/** The lease check of a write by a job's worker: $2 its worker id, $3 its attempt. */
export const FENCE = `status = 'running' AND worker_id = $2 AND attempts = $3`;

/**
 * An INSERT that, tried again after the reply to its commit was lost, finds
 * the row its earlier try wrote, instead of writing it twice or reporting a
 * conflict with itself. `insert` ends in ON CONFLICT DO NOTHING; `own` picks,
 * in `table`, the row of this very write (an id its writer chose, or values
 * only it has). Returns `column` of the row inserted or found: none when the
 * insert wrote nothing and no earlier try did either.
 */
export function insertOnceSql(insert: string, column: string, table: string, own: string): string {
  return `WITH ins AS (${insert} RETURNING ${column})
    SELECT ${column} FROM ins UNION ALL SELECT ${column} FROM ${table} WHERE ${own}`;
}

/**
 * Appends whose rows have no id of their own to be found by (logs, published
 * events) write an id of the append to `writes` in the same transaction. Tried
 * again after the reply to its commit was lost, an append finds its id there
 * and writes nothing. The ids begin with their time (see ids.ts), so those
 * older than `WRITES_KEPT_MS`, far past any retry, are dropped by range.
 */
export function writesMigrationSql(s: string): string {
  return `CREATE TABLE ${s}.writes (id text COLLATE "C" PRIMARY KEY);`;
}

/**
 * Migration 12: a published append records its events' ids with its own, so
 * that it can be one statement (its reply, lost, is its commit's) and a try
 * after a lost reply still returns what the first wrote.
 */
export function writtenEventIdsMigrationSql(s: string): string {
  return `ALTER TABLE ${s}.writes ADD COLUMN events bigint[];`;
}

const WRITES_KEPT_MS = 3_600_000;

export const newWriteId = idFactory();

/** The statement that records append `param`: it returns a row only the first time. */
export function firstWriteSql(writes: string, param: string): string {
  return `INSERT INTO ${writes} (id) VALUES (${param}) ON CONFLICT DO NOTHING RETURNING 1`;
}

/** Below this id, writes are older than `WRITES_KEPT_MS`. */
export function oldWritesBefore(now: number): string {
  return encodeTime(Math.max(0, now - WRITES_KEPT_MS), 10);
}
