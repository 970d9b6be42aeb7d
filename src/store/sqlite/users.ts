/** Users and API tokens on SQLite. Tokens are kept as SHA-256 hashes only. */
import { ConflictError } from '../../errors.ts';
import type { TokenRecord, UserRecord, UserRole } from '../store.ts';
import type { SqliteAccess } from './access.ts';


export const usersMigrationSql = `
CREATE TABLE users (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
  created_at INTEGER NOT NULL
);
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  user_name TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
  hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE INDEX tokens_user ON tokens (user_name);
`;

interface UserRow {
  name: string;
  role: UserRole;
  created_at: number;
  tokens: number;
}

const SELECT = `SELECT u.name, u.role, u.created_at,
  (SELECT count(*) FROM tokens t WHERE t.user_name = u.name AND t.revoked_at IS NULL) AS tokens FROM users u`;

const toUser = (r: UserRow): UserRecord => ({ name: r.name, role: r.role, createdAt: Number(r.created_at), tokens: Number(r.tokens) });

export class SqliteUsers {
  readonly #db: SqliteAccess;

  constructor(db: SqliteAccess) {
    this.#db = db;
  }

  create(name: string, role: UserRole): UserRecord {
    return this.#db.tx(() => {
      if (this.#db.get('SELECT 1 FROM users WHERE name = ?', name)) throw new ConflictError(`a user named ${name} already exists`, { name });
      this.#db.run('INSERT INTO users (name, role, created_at) VALUES (?, ?, ?)', name, role, this.#db.now());
      return this.get(name)!;
    });
  }

  get(name: string): UserRecord | null {
    const row = this.#db.get<UserRow>(`${SELECT} WHERE u.name = ?`, name);
    return row ? toUser(row) : null;
  }

  list(): UserRecord[] {
    return this.#db.all<UserRow>(`${SELECT} ORDER BY u.name`).map(toUser);
  }

  remove(name: string): boolean {
    return this.#db.tx(() => {
      this.#db.run('DELETE FROM tokens WHERE user_name = ?', name);
      return this.#db.run('DELETE FROM users WHERE name = ?', name) > 0;
    });
  }

  addToken(t: TokenRecord): boolean {
    return this.#db.tx(() => {
      if (!this.#db.get('SELECT 1 FROM users WHERE name = ?', t.user)) return false;
      this.#db.run('INSERT INTO tokens (id, user_name, hash, created_at) VALUES (?, ?, ?, ?)', t.id, t.user, t.hash, t.createdAt);
      return true;
    });
  }

  findToken(hash: string): { tokenId: string; user: string; role: UserRole } | null {
    const row = this.#db.get<{ id: string; name: string; role: UserRole }>(
      `SELECT t.id, u.name, u.role FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = ? AND t.revoked_at IS NULL`,
      hash,
    );
    return row ? { tokenId: row.id, user: row.name, role: row.role } : null;
  }

  revoke(user: string, tokenId?: string): number {
    const now = this.#db.now();
    return tokenId == null
      ? this.#db.run('UPDATE tokens SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL', now, user)
      : this.#db.run('UPDATE tokens SET revoked_at = ? WHERE user_name = ? AND id = ? AND revoked_at IS NULL', now, user, tokenId);
  }
}
