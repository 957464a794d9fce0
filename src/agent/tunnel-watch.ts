// The shell around mesh/tunnel-health.ts: while this node leads, each reconcile probes every remote
// segment's WireGuard IP through the device and reads its handshakes, and the verdict moves this
// node's tunnels-broken mark, which the reconciler publishes and feeds into its own election.
import { REKEY_TIMEOUT_SECONDS, type RemoteTunnel, type TunnelMark, UNMARKED, judgeTunnels, nextTunnelMark, silentSinceAfter } from '../mesh/tunnel-health.js';
import { isPublicEndpoint } from '../mesh/leader.js';
import { remoteSegmentsOf } from '../mesh/topology.js';
import type { Topology } from '../mesh/types.js';
import { answersPing } from '../host/ping.js';
import type { WireGuardStatus } from '../wireguard/dump.js';

/**
 * How long one probe waits for its first reply (a ping every 0.2 s until then): WireGuard's
 * REKEY_TIMEOUT, as a reply slower than a handshake's retry is as good as none. A shorter wait
 * marked healthy leaders broken on a starved machine (load 13 on two cores); it costs only a
 * broken tunnel's reconcile, as a healthy one answers at once.
 */
export const PROBE_DEADLINE_SECONDS = REKEY_TIMEOUT_SECONDS;

/** A change of the mark, for the reconciler's one log line. */
export interface MarkTransition {
  readonly broken: boolean;
  /** The remote segments judged, for the log line. */
  readonly segments: readonly string[];
}

export class TunnelWatch {
  private mark: TunnelMark = UNMARKED;
  /** When this node last became leader (unix seconds); undefined while it does not lead. */
  private leadingSince: number | undefined;
  /** When this node, leading, first had a peer for each remote leader's key. */
  private peerSince = new Map<string, number>();
  /** Since when every probe to each remote leader's key went unanswered. */
  private unansweredSince = new Map<string, number>();
  /** Since when every probe to each remote leader's key went unanswered while an answer was due. */
  private silentSince = new Map<string, number>();

  constructor(
    /** Healthy time a broken mark needs before it clears (hysteresis). */
    private readonly clearAfterSeconds: number,
    /** The resync period (seconds): the latest a remote leader's reconcile adds a new leader's key. */
    private readonly resyncSeconds: number,
  ) {}

  get broken(): boolean {
    return this.mark.broken;
  }

  /** Judges `t`'s tunnels at `now` when this node leads it; returns the transition, if any. */
  async check(t: Topology, dump: () => Promise<WireGuardStatus>, now: number): Promise<MarkTransition | undefined> {
    const before = this.mark.broken;
    const remotes = t.leader ? await this.observe(t, dump, now) : undefined;
    if (!t.leader) {
      this.leadingSince = undefined;
      this.peerSince = new Map();
      this.unansweredSince = new Map();
      this.silentSince = new Map();
    }
    this.mark = nextTunnelMark(this.mark, remotes && judgeTunnels(remotes, now), now, this.clearAfterSeconds);
    return this.mark.broken === before ? undefined : { broken: this.mark.broken, segments: (remotes ?? []).map((r) => r.segment) };
  }

  private async observe(t: Topology, dump: () => Promise<WireGuardStatus>, now: number): Promise<RemoteTunnel[]> {
    this.leadingSince ??= now;
    const handshakes = new Map((await dump()).peers.map((p) => [p.publicKey as string, p.latestHandshake]));
    const segments = remoteSegmentsOf(t);
    const publicStandIn = t.segment.nodes.some((n) => n.name !== t.node.name && isPublicEndpoint(n.endpoint));
    const peerSince = new Map(segments.map((s) => [s.publicKey as string, this.peerSince.get(s.publicKey) ?? now]));
    this.peerSince = peerSince;
    // Kept for the remote leaders of this round only: a key that leaves and comes back starts afresh.
    const unansweredSince = new Map<string, number>();
    const silentSince = new Map<string, number>();
    const remotes = await Promise.all(
      segments.map(async (s): Promise<RemoteTunnel> => {
        const handshake = handshakes.get(s.publicKey);
        const answered = await answersPing(s.wireguardIP, t.options.wireguardDevice, PROBE_DEADLINE_SECONDS).catch(() => undefined);
        const before = this.unansweredSince.get(s.publicKey);
        const unanswered = answered === undefined ? before : answered ? undefined : (before ?? now);
        if (unanswered !== undefined) unansweredSince.set(s.publicKey, unanswered);
        const observed: RemoteTunnel = {
          segment: s.key,
          configuredSince: Math.max(this.leadingSince ?? now, peerSince.get(s.publicKey) ?? now),
          remoteCatchUp: this.resyncSeconds,
          ...(handshake && { latestHandshake: Math.floor(handshake.getTime() / 1000) }),
          ...(answered !== undefined && { probeAnswered: answered }),
          ...(s.persistentKeepalive > 0 && { roamingKeepalive: s.persistentKeepalive, publicStandIn }),
          ...(unanswered !== undefined && { unansweredSince: unanswered }),
        };
        const silent = silentSinceAfter(observed, this.silentSince.get(s.publicKey), now);
        if (silent === undefined) return observed;
        silentSince.set(s.publicKey, silent);
        return { ...observed, silentSince: silent };
      }),
    );
    this.unansweredSince = unansweredSince;
    this.silentSince = silentSince;
    return remotes;
  }
}
