// The EndpointSlice controller's `endpoints.kubernetes.io/last-change-trigger-time` annotation: when
// the Pod or Service change behind a slice's latest update happened. kube-proxy measures network
// programming latency from it (wirelane_network_programming_duration_seconds). It is Go's
// time.RFC3339Nano text; anything else is refused here, and only the metric goes without it.
import { ParseError } from '../model/ip.js';

export const LAST_CHANGE_TRIGGER_TIME = 'endpoints.kubernetes.io/last-change-trigger-time';

// Go's RFC 3339 layout: a 'T', seconds, an optional fraction of 1 to 9 digits, 'Z' or ±hh:mm.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** Unix milliseconds of an RFC 3339 time (fraction cut to milliseconds); ParseError for anything else. */
export function parseTriggerTime(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) throw new ParseError(`"${text}" is not an RFC 3339 time`);
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = Number((m[7] ?? '').padEnd(3, '0').slice(0, 3));
  const offsetMinutes = m[8] === 'Z' ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  // Go refuses what does not exist on a calendar (2024-02-30, 24:00, a 60th second), and so does this.
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) {
    throw new ParseError(`"${text}" is not a valid date and time`);
  }
  if (m[8] !== 'Z' && (Number(m[10]) > 23 || Number(m[11]) > 59)) throw new ParseError(`"${text}" has an offset out of range`);
  const at = new Date(0);
  // setUTCFullYear: Date.UTC would read years 0..99 as 1900..1999.
  at.setUTCFullYear(year, month - 1, day);
  at.setUTCHours(hour, minute, second, millis);
  return at.getTime() - offsetMinutes * 60_000;
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(2000, month, 0)).getUTCDate() - (month === 2 && !isLeap(year) ? 1 : 0);
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}
