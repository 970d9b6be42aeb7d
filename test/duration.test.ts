/** The one duration grammar that options, command agents and approvals share. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { durationFromText } from '../src/duration.ts';
import { durationMs } from '../src/durable.ts';
import { parseDuration } from '../src/cli/parse.ts';

describe('durations', () => {
  it('reads units and parts', () => {
    assert.equal(durationFromText('500ms'), 500);
    assert.equal(durationFromText(' 30s '), 30_000);
    assert.equal(durationFromText('1.5m'), 90_000);
    assert.equal(durationFromText('1h30m'), 5_400_000);
    assert.equal(durationFromText('1h 30min'), 5_400_000);
    assert.equal(durationFromText('2D'), 172_800_000);
    assert.equal(durationFromText('1w'), 604_800_000);
  });

  it('refuses what is not a duration, bare numbers included', () => {
    for (const text of ['', '10', '5 minutes', 'ms', '1h-', '-5s', '1y']) assert.equal(durationFromText(text), null, text);
  });

  it('each caller says what a bare number means and how a bad one is reported', () => {
    assert.equal(parseDuration('10'), 10_000, 'the CLI: seconds');
    assert.equal(durationMs('expiresIn', 250), 250, 'the library: milliseconds');
    assert.equal(durationMs('expiresIn', '1h30m'), 5_400_000);
    assert.throws(() => durationMs('expiresIn', 'soon'), /expiresIn|must be milliseconds/);
    assert.throws(() => parseDuration('soon'), /expected a duration/);
  });
});
