// Flag values shared by several commands, parsed into domain types or rejected with one line.
import type { MeshOptions } from '../mesh/types.js';
import { ParseError, type Cidr, parseCidr } from '../model/ip.js';
import { ENCAPSULATIONS, type Encapsulation, type Granularity } from '../model/mesh.js';
import { LOG_LEVELS, type LogLevel } from '../observability/logger.js';
import { parseGranularity } from '../sources/granularity.js';
import { UsageError, type Values } from './command.js';

export function stringFlag(values: Values, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} takes a value`);
  return v;
}

export function requiredFlag(values: Values, name: string): string {
  const v = stringFlag(values, name);
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

/** A switch (see Command.switches): `--x`, `--x=true` or `--x=false`. */
export function switchFlag(values: Values, name: string, fallback: boolean): boolean {
  const v = stringFlag(values, name);
  if (v === undefined) return fallback;
  if (v !== 'true' && v !== 'false') throw new UsageError(`--${name}: "${v}" is not true or false`);
  return v === 'true';
}

export function booleanFlag(values: Values, name: string): boolean {
  return values[name] === true;
}

/** Runs a domain parser on a flag's value, turning its ParseError into a usage error naming the flag. */
export function parseFlag<T>(name: string, value: string, parse: (text: string) => T): T {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof ParseError) throw new UsageError(`--${name}: ${err.message}`);
    throw err;
  }
}

export function choiceFlag<T extends string>(name: string, value: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${name}: "${value}" is not one of ${choices.join(', ')}`);
  }
  return value as T;
}

export function integerFlag(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^-?\d+$/.test(value) || n < min || n > max) throw new UsageError(`--${name}: "${value}" is not an integer in ${min}..${max}`);
  return n;
}

/** Go-style durations as Kubernetes components take them: `30s`, `1m`, `500ms`, `1m30s`. Returns ms. */
export function durationFlag(name: string, value: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) {
    throw new UsageError(`--${name}: "${value}" is not a duration (e.g. 30s, 1m, 500ms)`);
  }
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (units[p[2] as string] as number), 0);
  if (ms <= 0) throw new UsageError(`--${name}: must be positive`);
  return ms;
}

/** The agent's full reconcile interval; also the CLI's, which judges heartbeats by it. */
export const DEFAULT_RESYNC_PERIOD = '30s';

/** A comma-separated list of CIDRs (`--service-cidr 10.96.0.0/12,fd00:96::/108`); absent or '' is none. */
export function cidrListFlag(values: Values, name: string): Cidr[] {
  return (stringFlag(values, name) ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '')
    .map((c) => parseFlag(name, c, parseCidr));
}

/** --service-cidr and --allow-wide-claims: what Peers and locations may claim, for the agent and the CLI alike. */
export function parseClaimFlags(values: Values): Required<Pick<MeshOptions, 'serviceCIDRs' | 'allowWideClaims'>> {
  return { serviceCIDRs: cidrListFlag(values, 'service-cidr'), allowWideClaims: switchFlag(values, 'allow-wide-claims', false) };
}

/** --interface: a Linux interface name (IFNAMSIZ is 16 with the terminating NUL). */
export function interfaceFlag(values: Values): string {
  const name = stringFlag(values, 'interface') ?? '';
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new UsageError(`--interface: "${name}" is not an interface name (1-15 of A-Z a-z 0-9 _ . -)`);
  return name;
}

/**
 * --subnet: the WireGuard subnets, one per family, repeated or comma-separated (`--subnet
 * 10.4.0.0/16,fd00:4::/64`); absent is `fallback`. The first given is the primary one.
 */
export function subnetsFlag(values: Values, fallback: string): Cidr[] {
  const given = values['subnet'];
  const texts = given === undefined ? [fallback] : Array.isArray(given) ? given : [given];
  const subnets = texts.flatMap((text) => {
    if (typeof text !== 'string') throw new UsageError('--subnet takes a value');
    return text.split(',').map((c) => c.trim()).filter((c) => c !== '').map((c) => parseFlag('subnet', c, parseCidr));
  });
  const families = subnets.map((s) => s.family);
  if (subnets.length === 0) throw new UsageError('--subnet: want a CIDR');
  if (new Set(families).size !== families.length) throw new UsageError(`--subnet: "${texts.join(',')}" is not one CIDR per family`);
  return subnets;
}
export const parseGranularityFlag = (name: string, v: string): Granularity => parseFlag(name, v, parseGranularity);
export const parseEncapsulationFlag = (v: string): Encapsulation => choiceFlag('encapsulate', v, ENCAPSULATIONS);
export const parseLogLevelFlag = (v: string): LogLevel => choiceFlag('log-level', v, LOG_LEVELS);
