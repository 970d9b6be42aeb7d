/** Users and API tokens on PostgreSQL. Tokens are kept as SHA-256 hashes only. */
import { ConflictError } from '../../errors.ts';
import type { TokenRecord, UserRecord, UserRole } from '../store.ts';
import { insertOnceSql, type PostgresAccess } from './access.ts';


export function usersMigrationSql(s: string): string {
  return `
CREATE TABLE ${s}.users (
  name text PRIMARY KEY,
  role text NOT NULL CHECK (role IN ('admin', 'user')),
  created_at bigint NOT NULL
);
CREATE TABLE ${s}.tokens (
  id text PRIMARY KEY,
  user_name text NOT NULL REFERENCES ${s}.users (name) ON DELETE CASCADE,
  hash text NOT NULL UNIQUE,
  created_at bigint NOT NULL,
  revoked_at bigint
);
CREATE INDEX tokens_user ON ${s}.tokens (user_name);
`;
}

interface UserRow {
  name: string;
  role: UserRole;
  created_at: string;
  tokens: string;
}

const toUser = (r: UserRow): UserRecord => ({ name: r.name, role: r.role, createdAt: Number(r.created_at), tokens: Number(r.tokens) });

export class PostgresUsers {
  readonly #db: PostgresAccess;

  constructor(db: PostgresAccess) {
    this.#db = db;
  }

  get #select(): string {
    const { table } = this.#db;
    return `SELECT u.name, u.role, u.created_at,
      (SELECT count(*) FROM ${table('tokens')} t WHERE t.user_name = u.name AND t.revoked_at IS NULL) AS tokens
      FROM ${table('users')} u`;
  }

  async create(name: string, role: UserRole): Promise<UserRecord> {
    const users = this.#db.table('users');
    // An earlier try's row has the same role and the same time.
    const rows = await this.#db.q<{ name: string }>(
      insertOnceSql(
        `INSERT INTO ${users} (name, role, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
        'name',
        users,
        'name = $1 AND role = $2 AND created_at = $3',
      ),
      [name, role, this.#db.now()],
    );
    if (rows.length === 0) throw new ConflictError(`a user named ${name} already exists`, { name });
    return (await this.get(name))!;
  }

  async get(name: string): Promise<UserRecord | null> {
    const [row] = await this.#db.q<UserRow>(`${this.#select} WHERE u.name = $1`, [name]);
    return row ? toUser(row) : null;
  }

  async list(): Promise<UserRecord[]> {
    return (await this.#db.q<UserRow>(`${this.#select} ORDER BY u.name`)).map(toUser);
  }

  async remove(name: string): Promise<boolean> {
    const rows = await this.#db.q(`DELETE FROM ${this.#db.table('users')} WHERE name = $1 RETURNING name`, [name]);
    return rows.length > 0;
  }

  async addToken(t: TokenRecord): Promise<boolean> {
    const tokens = this.#db.table('tokens');
    const rows = await this.#db.q(
      insertOnceSql(
        `INSERT INTO ${tokens} (id, user_name, hash, created_at)
         SELECT $1, name, $3, $4 FROM ${this.#db.table('users')} WHERE name = $2 ON CONFLICT (id) DO NOTHING`,
        'id',
        tokens,
        'id = $1 AND user_name = $2 AND hash = $3',
      ),
      [t.id, t.user, t.hash, t.createdAt],
    );
    return rows.length > 0;
  }

  async findToken(hash: string): Promise<{ tokenId: string; user: string; role: UserRole } | null> {
    const [row] = await this.#db.q<{ id: string; name: string; role: UserRole }>(
      `SELECT t.id, u.name, u.role FROM ${this.#db.table('tokens')} t JOIN ${this.#db.table('users')} u ON u.name = t.user_name
       WHERE t.hash = $1 AND t.revoked_at IS NULL`,
      [hash],
    );
    return row ? { tokenId: row.id, user: row.name, role: row.role } : null;
  }

  async revoke(user: string, tokenId?: string): Promise<number> {
    const rows = await this.#db.q(
      `UPDATE ${this.#db.table('tokens')} SET revoked_at = $1
       WHERE user_name = $2 AND revoked_at IS NULL AND ($3::text IS NULL OR id = $3) RETURNING id`,
      [this.#db.now(), user, tokenId ?? null],
    );
    return rows.length;
  }
}
