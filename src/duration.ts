/** Durations written as text, one grammar for every place that takes them. */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Milliseconds in `500ms`, `30s`, `5m`, `1h`, `2d`, `1w`, or several parts
 * together (`1h30m`); null when the text is not such a duration (a bare
 * number included: what it means is up to the caller).
 */
export function durationFromText(text: string): number | null {
  const value = text.trim().toLowerCase();
  const part = /(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h|d|w)\s*/y;
  let total = 0;
  let end = 0;
  let m: RegExpExecArray | null;
  while ((m = part.exec(value)) !== null) {
    total += Number(m[1]) * UNITS[m[2]];
    end = part.lastIndex;
  }
  return value !== '' && end === value.length ? Math.round(total) : null;
}
