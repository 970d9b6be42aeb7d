/**
 * The array literals the store writes its batches with: PostgreSQL must read
 * back every element as it was, whatever characters it holds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { arrayLiteral } from '../../src/store/postgres/index.ts';
import { postgresBaseUrl, postgresUnavailable } from '../helpers/engines.ts';

describe('PostgreSQL array literals', { skip: postgresUnavailable }, () => {
  it('reads back every text element as it was, NULL as null', async () => {
    const values = [
      '01KB0000000000000000000000',
      'w_1',
      '',
      'NULL',
      'null',
      'Null',
      ' lead and trail ',
      'a,b',
      '{braces}',
      '"quoted"',
      'back\\slash',
      '\\"',
      '{"json":["x",1,null],"s":"q\\"uote"}',
      'line\nbreak\ttab',
      'ünïcödé ✓',
      null,
      '0',
    ];
    const client = new pg.Client({ connectionString: await postgresBaseUrl() });
    await client.connect();
    try {
      const { rows } = await client.query<{ v: (string | null)[] }>('SELECT $1::text[] AS v', [arrayLiteral(values)]);
      assert.deepEqual(rows[0].v, values);
      const ints = await client.query<{ v: (number | null)[] }>('SELECT $1::bigint[] AS v', [arrayLiteral([1, 0, null, 1764547200000])]);
      assert.deepEqual(ints.rows[0].v, ['1', '0', null, '1764547200000']);
      const empty = await client.query<{ n: number }>('SELECT cardinality($1::text[]) AS n', [arrayLiteral([])]);
      assert.equal(empty.rows[0].n, 0);
    } finally {
      await client.end();
    }
  });
});
