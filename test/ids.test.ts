/** The id generator: sortable, distinct in the first 12 characters, moving on when a millisecond is full. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idFactory, SHORT_ID_LENGTH } from '../src/ids.ts';

describe('ids', () => {
  it('are 26 characters of Crockford base32 starting with the time', () => {
    const newId = idFactory(() => 1_700_000_000_000);
    const id = newId();
    assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    // 1_700_000_000_000 ms in base32, as a ULID encodes its time.
    assert.equal(id.slice(0, 10), '01HF7YAT00');
  });

  it('made within one millisecond sort in order and differ in their short form', () => {
    let now = 5_000;
    const newId = idFactory(() => now);
    const ids = Array.from({ length: 5000 }, () => newId());
    assert.deepEqual(ids, ids.toSorted());
    assert.equal(new Set(ids.map((id) => id.slice(0, SHORT_ID_LENGTH))).size, ids.length);
    // 5,000 ids do not fit one millisecond: the generator moved ahead of the clock...
    assert.ok(ids.at(-1)!.slice(0, 10) > ids[0].slice(0, 10));
    // ...and when the clock is behind it, it stays ahead rather than going back.
    now = 4_000;
    const later = newId();
    assert.ok(later > ids.at(-1)!);
    now = 10_000_000;
    const fresh = newId();
    assert.ok(fresh > later);
    assert.equal(fresh.slice(0, 10), idFactory(() => 10_000_000)().slice(0, 10));
  });

  it('from two generators in the same millisecond do not collide', () => {
    const a = idFactory(() => 42);
    const b = idFactory(() => 42);
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      seen.add(a());
      seen.add(b());
    }
    assert.equal(seen.size, 4000);
  });
});
