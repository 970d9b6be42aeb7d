/** Cron and interval timing, and the daylight-saving policy, without a database. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatInterval, parseInterval } from '../src/schedules/index.ts';
import { canonicalTimeZone, isRepeatedLocalTime, nextCronTime, nextIntervalTime, parseCron } from '../src/schedules/timing.ts';

const NY = 'America/New_York';

/** The next `n` firings after `from`, as ISO strings. */
function firings(expression: string, timeZone: string, from: string, n: number): string[] {
  const t = parseCron(expression, timeZone);
  const out: string[] = [];
  let at = Date.parse(from);
  for (let i = 0; i < n; i++) {
    const next = nextCronTime(t, at);
    assert.ok(next !== null);
    out.push(new Date(next).toISOString());
    at = next;
  }
  return out;
}

describe('schedule timing', () => {
  it('parses intervals in words and compact forms, refusing zero, negative and unitless ones', () => {
    assert.equal(parseInterval('30 seconds'), 30_000);
    assert.equal(parseInterval('5 minutes'), 300_000);
    assert.equal(parseInterval('1 hour'), 3_600_000);
    assert.equal(parseInterval('2 days'), 172_800_000);
    assert.equal(parseInterval('1 week'), 604_800_000);
    assert.equal(parseInterval('30s'), 30_000);
    assert.equal(parseInterval('5m'), 300_000);
    assert.equal(parseInterval('1h30m'), 5_400_000);
    assert.equal(parseInterval('1 hour 30 minutes'), 5_400_000);
    assert.equal(parseInterval(' 2 Hours '), 7_200_000);
    for (const bad of ['0 seconds', '0m', '-5 minutes', '5', 'soon', '5 parsecs', '', '500ms', '1.5 seconds', '400 days']) {
      assert.throws(() => parseInterval(bad), Error, bad);
    }
    assert.throws(() => parseInterval(5), /no unit/);
    assert.equal(formatInterval(300_000), '5 minutes');
    assert.equal(formatInterval(90_000), '90 seconds');
    assert.equal(formatInterval(604_800_000), '1 week');
    assert.equal(formatInterval(3_600_000), '1 hour');
  });

  it('keeps an interval schedule in phase after a gap', () => {
    const start = Date.UTC(2026, 0, 1);
    assert.equal(nextIntervalTime(300_000, start, start), start + 300_000);
    assert.equal(nextIntervalTime(300_000, start, start + 299_999), start + 300_000);
    assert.equal(nextIntervalTime(300_000, start, start + 5 * 3_600_000 + 1), start + 5 * 3_600_000 + 300_000);
  });

  it('reads 5- and 6-field cron expressions and refuses others', () => {
    assert.deepEqual(firings('0 9 * * *', 'UTC', '2026-01-01T00:00:00Z', 2), ['2026-01-01T09:00:00.000Z', '2026-01-02T09:00:00.000Z']);
    assert.deepEqual(firings('*/15 0 9 * * *', 'UTC', '2026-01-01T09:00:00Z', 2), ['2026-01-01T09:00:15.000Z', '2026-01-01T09:00:30.000Z']);
    assert.deepEqual(firings('0 9 * * *', 'Europe/Berlin', '2026-01-01T00:00:00Z', 1), ['2026-01-01T08:00:00.000Z']);
    assert.throws(() => parseCron('0 9 * *', 'UTC'), /4 fields/);
    assert.throws(() => parseCron('0 0 9 * * * 2026', 'UTC'), /7 fields/);
    assert.throws(() => parseCron('61 9 * * *', 'UTC'), /not a valid cron expression/);
  });

  it('knows named time zones and refuses unknown ones and offsets', () => {
    assert.equal(canonicalTimeZone('america/new_york'), NY);
    assert.equal(canonicalTimeZone('UTC'), 'UTC');
    assert.throws(() => canonicalTimeZone('Mars/Olympus_Mons'), /unknown time zone/);
    assert.throws(() => canonicalTimeZone('+02:00'), /not a time zone name/);
  });

  describe('daylight saving in America/New_York', () => {
    it('2026-03-08: a local time that does not exist is skipped that day', () => {
      // 02:30 does not exist on 2026-03-08 (01:59 EST → 03:00 EDT).
      assert.deepEqual(firings('30 2 * * *', NY, '2026-03-06T12:00:00Z', 3), [
        '2026-03-07T07:30:00.000Z', // 02:30 EST
        '2026-03-09T06:30:00.000Z', // 02:30 EDT; nothing on the 8th, and not 03:00
        '2026-03-10T06:30:00.000Z',
      ]);
      // Hourly: 01:00 EST, then 03:00 EDT; no 02:00 and nothing twice.
      assert.deepEqual(firings('0 * * * *', NY, '2026-03-08T05:30:00Z', 3), [
        '2026-03-08T06:00:00.000Z',
        '2026-03-08T07:00:00.000Z',
        '2026-03-08T08:00:00.000Z',
      ]);
      // 09:00 every day stays 09:00 local across the change.
      assert.deepEqual(firings('0 9 * * *', NY, '2026-03-07T00:00:00Z', 2), ['2026-03-07T14:00:00.000Z', '2026-03-08T13:00:00.000Z']);
    });

    it('2026-11-01: a local time that happens twice fires once, at its first occurrence', () => {
      // 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST).
      assert.deepEqual(firings('30 1 * * *', NY, '2026-10-31T12:00:00Z', 2), ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
      // Hourly: 01:00 EDT, then 02:00 EST; the second 01:00 does not fire.
      assert.deepEqual(firings('0 * * * *', NY, '2026-11-01T04:30:00Z', 3), [
        '2026-11-01T05:00:00.000Z',
        '2026-11-01T07:00:00.000Z',
        '2026-11-01T08:00:00.000Z',
      ]);
      assert.deepEqual(firings('*/30 * * * *', NY, '2026-11-01T04:50:00Z', 4), [
        '2026-11-01T05:00:00.000Z',
        '2026-11-01T05:30:00.000Z',
        '2026-11-01T07:00:00.000Z',
        '2026-11-01T07:30:00.000Z',
      ]);
      assert.equal(isRepeatedLocalTime(Date.parse('2026-11-01T06:30:00Z'), NY), true);
      assert.equal(isRepeatedLocalTime(Date.parse('2026-11-01T05:30:00Z'), NY), false);
      assert.equal(isRepeatedLocalTime(Date.parse('2026-11-01T07:30:00Z'), NY), false);
    });
  });
});
