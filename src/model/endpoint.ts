// A WireGuard endpoint: `host:port` where host is IPv4, `[IPv6]` or a DNS name.
import { type Ip, ParseError, formatIp, parseIp } from './ip.js';

export type EndpointHost = { readonly kind: 'ip'; readonly ip: Ip } | { readonly kind: 'dns'; readonly name: string };

export interface Endpoint {
  readonly host: EndpointHost;
  readonly port: number;
}

// RFC 1123 host names; a trailing dot is allowed.
const DNS_NAME = /^(?=.{1,253}\.?$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

export function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) throw new ParseError(`"${text}" is not a port`);
  return port;
}

export function parseEndpoint(text: string): Endpoint {
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  if (bracketed) {
    const ip = parseIpHost(bracketed[1] as string, text);
    if (ip.family !== 6) throw new ParseError(`"${text}" is not an endpoint (brackets are for IPv6)`);
    return { host: { kind: 'ip', ip }, port: parsePortOf(bracketed[2] as string, text) };
  }
  const colon = text.lastIndexOf(':');
  if (colon <= 0 || text.indexOf(':') !== colon) {
    throw new ParseError(`"${text}" is not an endpoint (want host:port, [IPv6]:port)`);
  }
  const host = text.slice(0, colon);
  const port = parsePortOf(text.slice(colon + 1), text);
  if (/^[\d.]+$/.test(host)) return { host: { kind: 'ip', ip: parseIpHost(host, text) }, port };
  if (!DNS_NAME.test(host)) throw new ParseError(`"${text}" is not an endpoint (bad host name)`);
  return { host: { kind: 'dns', name: host.toLowerCase() }, port };
}

function parseIpHost(host: string, whole: string): Ip {
  try {
    return parseIp(host);
  } catch {
    throw new ParseError(`"${whole}" is not an endpoint (bad IP address)`);
  }
}

function parsePortOf(port: string, whole: string): number {
  try {
    return parsePort(port);
  } catch {
    throw new ParseError(`"${whole}" is not an endpoint (bad port)`);
  }
}

export function formatEndpoint(endpoint: Endpoint): string {
  return `${formatHost(endpoint.host)}:${endpoint.port}`;
}

export function formatHost(host: EndpointHost): string {
  if (host.kind === 'dns') return host.name;
  return host.ip.family === 6 ? `[${formatIp(host.ip)}]` : formatIp(host.ip);
}

export function equalEndpoint(a: Endpoint | undefined, b: Endpoint | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.port === b.port && formatHost(a.host) === formatHost(b.host);
}
