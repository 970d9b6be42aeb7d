/**
 * Users and API tokens. A token is shown once, when it is made; only its
 * SHA-256 is stored, so a copy of the database gives no one a way in. Tokens
 * are long random strings, so a fast hash is enough (there is nothing to
 * guess), and lookups by hash are an index probe.
 */
import { createHash, randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulidx';
import { NotFoundError, ValidationError } from './errors.ts';
import type { Store, UserRecord, UserRole } from './store/store.ts';

export interface User {
  name: string;
  role: UserRole;
  createdAt: string;
  /** How many tokens of theirs are not revoked. */
  tokens: number;
}

/** Who made a request: the user a token belongs to. */
export interface Principal {
  user: string;
  role: UserRole;
  tokenId: string;
}

export interface IssuedToken {
  /** Give this to the client: it is not stored and cannot be shown again. */
  token: string;
  id: string;
  user: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$/;
const newId = monotonicFactory();

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

const toUser = (r: UserRecord): User => ({ name: r.name, role: r.role, createdAt: new Date(r.createdAt).toISOString(), tokens: r.tokens });

export class Users {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  /** Creates a user (role `user` unless `admin`). */
  async add(name: string, options: { admin?: boolean } = {}): Promise<User> {
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new ValidationError('name', 'must be 1-100 letters, digits, _ . @ or -, starting with a letter or digit');
    }
    return toUser(await this.#store.createUser(name, options.admin ? 'admin' : 'user'));
  }

  async get(name: string): Promise<User> {
    const user = await this.#store.getUser(name);
    if (!user) throw new NotFoundError('user', name);
    return toUser(user);
  }

  async list(): Promise<User[]> {
    return (await this.#store.listUsers()).map(toUser);
  }

  /** Removes a user and their tokens. Their jobs stay, owned by the name. */
  async remove(name: string): Promise<void> {
    if (!(await this.#store.removeUser(name))) throw new NotFoundError('user', name);
  }

  /** Makes a new token for a user; the user's other tokens keep working. */
  async issueToken(name: string): Promise<IssuedToken> {
    const id = newId().toLowerCase();
    const token = `aq_${randomBytes(32).toString('base64url')}`;
    const stored = await this.#store.addToken({ id, user: name, hash: hashToken(token), createdAt: this.#store.now() });
    if (!stored) throw new NotFoundError('user', name);
    return { token, id, user: name };
  }

  /** Revokes a user's tokens: all, or the one with `tokenId`. Returns how many. */
  async revoke(name: string, tokenId?: string): Promise<number> {
    if (!(await this.#store.getUser(name))) throw new NotFoundError('user', name);
    return this.#store.revokeTokens(name, tokenId);
  }

  /** The user a token belongs to, or null for an unknown or revoked token. */
  async authenticate(token: string): Promise<Principal | null> {
    if (typeof token !== 'string' || token.length < 10 || token.length > 200) return null;
    const found = await this.#store.findToken(hashToken(token));
    return found ? { user: found.user, role: found.role, tokenId: found.tokenId } : null;
  }
}
