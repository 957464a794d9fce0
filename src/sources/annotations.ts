// Node annotation names: wirelane.io/ is ours, kilo.squat.ai/ is read too so a Kilo cluster can switch over.
export const PREFIX = 'wirelane.io/';
export const KILO_PREFIX = 'kilo.squat.ai/';

export const ANNOTATIONS = {
  location: 'location',
  leader: 'leader',
  forceEndpoint: 'force-endpoint',
  forceInternalIP: 'force-internal-ip',
  persistentKeepalive: 'persistent-keepalive',
  allowedLocationIPs: 'allowed-location-ips',
  key: 'key',
  endpoint: 'endpoint',
  internalIP: 'internal-ip',
  otherInternalIP: 'other-internal-ip',
  wireguardIP: 'wireguard-ip',
  otherWireguardIP: 'other-wireguard-ip',
  lastSeen: 'last-seen',
  discoveredEndpoints: 'discovered-endpoints',
  granularity: 'granularity',
  tunnelsBroken: 'tunnels-broken',
  heartbeat: 'heartbeat',
} as const;

export type AnnotationSuffix = (typeof ANNOTATIONS)[keyof typeof ANNOTATIONS];

/** The annotations the agent writes on its own node, and removes on a clean exit. */
export const AGENT_WRITTEN: readonly AnnotationSuffix[] = [
  ANNOTATIONS.key,
  ANNOTATIONS.endpoint,
  ANNOTATIONS.internalIP,
  ANNOTATIONS.otherInternalIP,
  ANNOTATIONS.wireguardIP,
  ANNOTATIONS.otherWireguardIP,
  ANNOTATIONS.lastSeen,
  ANNOTATIONS.discoveredEndpoints,
  ANNOTATIONS.granularity,
  ANNOTATIONS.tunnelsBroken,
  ANNOTATIONS.heartbeat,
];

/**
 * The agent-written annotations an agent of a file-sourced cluster shares with the others through
 * the annotations directory (sources/file/annotations-dir.ts): what it learns at run time. Its key
 * and addresses are the operator's, in the cluster file, and stay there.
 */
export const SHARED_BY_FILE: readonly AnnotationSuffix[] = [ANNOTATIONS.tunnelsBroken, ANNOTATIONS.discoveredEndpoints, ANNOTATIONS.wireguardIP, ANNOTATIONS.otherWireguardIP];

export interface Annotation {
  /** The full name it was found under, for error messages. */
  readonly name: string;
  readonly value: string;
}

/** Looks up an annotation under our prefix, then under Kilo's. */
export function readAnnotation(
  annotations: Readonly<Record<string, string>> | undefined,
  suffix: AnnotationSuffix,
): Annotation | undefined {
  return annotationsOf(annotations, suffix)[0];
}

/** Every spelling of an annotation the node has, ours first. */
export function annotationsOf(annotations: Readonly<Record<string, string>> | undefined, suffix: AnnotationSuffix): Annotation[] {
  return [PREFIX, KILO_PREFIX].flatMap((prefix) => {
    const value = annotations?.[prefix + suffix];
    return value === undefined ? [] : [{ name: prefix + suffix, value }];
  });
}
