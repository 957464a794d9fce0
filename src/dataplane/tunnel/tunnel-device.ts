// The encapsulation device for traffic between nodes of one location (`--encapsulate always` or
// `crosssubnet`). The mesh routes such traffic as `<dst> via <peer internal IP> dev <tunnel> onlink`
// and this device makes that next hop reachable.
//
// IPIP, where the kernel has it (as Kilo does): `tunl0`, the catch-all IPIP device (no local or
// remote address). For a packet routed to it, the kernel takes the route's gateway as the outer
// destination, so no per-peer state is needed; the peer's internal IP is where packets are sent.
//
// VXLAN otherwise (this kernel has no IPIP module). A VXLAN device needs a MAC for the next hop
// and an underlay address for that MAC, and learning is off (the agent knows every peer, and
// flooding to find them would need a multicast group or a full flood list). So, as flannel does,
// but without publishing anything:
//   - every node's VXLAN device has a MAC derived from its own underlay IP (vxlanMacOf);
//   - per peer, a permanent neighbour entry  <peer internal IP> lladdr <peer MAC>  (ARP is never
//     needed, so the device has no IP address at all; IPv6 address generation is off too, so
//     it sends no router solicitations into the void);
//   - per peer, a static FDB entry  <peer MAC> dst <peer underlay IP>, so the frame goes to the
//     peer's VTEP over UDP; the peer accepts it because the inner destination MAC is its own.
// The device is created with `local <own underlay IP>` and `dev <the interface holding it>`, so
// its MTU follows the underlay (minus 50 bytes for IPv4, 70 for IPv6) and the outer source is
// stable. VNI 1107 and UDP port 4789 (IANA) by default; both are options for hosts that already
// run another VXLAN overlay on that port in a conflicting mode.
import { randomBytes } from 'node:crypto';
import { runCommand } from '../../host/command.js';
import { IpJsonObject, readIpJson } from '../../host/ip.js';
import { findLink } from '../../host/links.js';
import { formatIp, parseIp, type Ip } from '../../model/ip.js';
import { type BatchLine, runForcedBatch } from '../../host/batch.js';
import { firstLine } from '../../observability/first-line.js';
import { PartialApplyError, type WriteFailure } from '../partial-apply.js';
import { SerialQueue } from '../serial-queue.js';
import { isInterfaceName } from '../routes/route-plan.js';
import { forwardingOf, planForwarding, vxlanMacOf, type FdbEntry, type NeighbourEntry, type TunnelDesired } from './vxlan-forwarding.js';

export type TunnelMode = 'ipip' | 'vxlan';

export const IPIP_DEVICE = 'tunl0';
export const VXLAN_DEVICE = 'wirelane.vx';
export const DEFAULT_VXLAN_VNI = 1107;
export const DEFAULT_VXLAN_PORT = 4789;

export interface TunnelDeviceOptions {
  readonly netns?: string;
  /** Skips detection (tests, or an operator who knows better). */
  readonly mode?: TunnelMode;
  readonly vxlan?: { readonly name?: string; readonly vni?: number; readonly port?: number };
}

export interface TunnelApplyReport {
  /** Link, FDB and neighbour writes that succeeded. */
  readonly written: number;
}

export class TunnelError extends Error {
  override readonly name = 'TunnelError';
}

function namespaceArgs(netns: string | undefined): string[] {
  return netns === undefined ? [] : ['-n', netns];
}

/**
 * Whether IPIP works here. An existing `tunl0` of kind ipip proves the module is loaded. Otherwise
 * the kernel is asked directly: adding an ipip link autoloads the module where one exists (the
 * only reliable test: /sys/module says nothing about loadable modules, and a container cannot run
 * modprobe). The probe link has unique TEST-NET addresses, so it cannot clash with the catch-all
 * tunl0 that loading the module creates, and it is deleted at once.
 */
export async function detectTunnelMode(opts: { readonly netns?: string } = {}): Promise<TunnelMode> {
  if ((await findLink(IPIP_DEVICE, opts))?.kind === 'ipip') return 'ipip';
  const probe = `wlprobe${randomBytes(3).toString('hex')}`;
  const args = [...namespaceArgs(opts.netns), 'link', 'add', probe, 'type', 'ipip', 'local', '192.0.2.1', 'remote', '192.0.2.2'];
  const result = await runCommand('ip', args, { allowFailure: true });
  if (result.exitCode === 0) {
    await runCommand('ip', [...namespaceArgs(opts.netns), 'link', 'del', probe]);
    return 'ipip';
  }
  if (/unknown device type|not supported/i.test(result.stderr)) return 'vxlan';
  throw new TunnelError(`tunnel: cannot tell whether IPIP is available: ip ${args.join(' ')}: ${firstLine(result.stderr)}`);
}

/** The parts of `ip -d link show` the tunnel compares. */
interface DeviceState {
  readonly kind: string | undefined;
  readonly up: boolean;
  readonly mac: string | undefined;
  readonly vni: number | undefined;
  readonly port: number | undefined;
  readonly local: string | undefined;
  readonly underlayDevice: string | undefined;
  readonly learning: boolean | undefined;
}

export class TunnelDevice {
  /** The device the mesh's encapsulated routes go through (its `tunnelDevice` option). */
  readonly name: string;
  private readonly vni: number;
  /** VXLAN's UDP port. */
  readonly port: number;
  /** IPIP only: tunl0 is shared with other software (Calico), so only undo what this object did. */
  private changedTunl0 = false;
  private readonly queue = new SerialQueue();

  private constructor(
    readonly mode: TunnelMode,
    private readonly netns: string | undefined,
    vxlan: TunnelDeviceOptions['vxlan'],
  ) {
    this.name = mode === 'ipip' ? IPIP_DEVICE : (vxlan?.name ?? VXLAN_DEVICE);
    this.vni = vxlan?.vni ?? DEFAULT_VXLAN_VNI;
    this.port = vxlan?.port ?? DEFAULT_VXLAN_PORT;
    if (!Number.isInteger(this.vni) || this.vni < 1 || this.vni > 0xffffff) throw new RangeError(`tunnel: option vxlan.vni: ${this.vni} is not in 1..16777215`);
    if (!Number.isInteger(this.port) || this.port < 1 || this.port > 65535) throw new RangeError(`tunnel: option vxlan.port: ${this.port} is not in 1..65535`);
    if (!isInterfaceName(this.name)) throw new RangeError(`tunnel: option vxlan.name: "${this.name}" is not an interface name`);
  }

  /** Detects the mode (unless given) and returns the device; nothing is created until apply. */
  static async open(opts: TunnelDeviceOptions = {}): Promise<TunnelDevice> {
    const mode = opts.mode ?? (await detectTunnelMode(opts));
    return new TunnelDevice(mode, opts.netns, opts.vxlan);
  }

  /** Idempotent: writes nothing when the device and its forwarding entries are as desired. */
  apply(desired: TunnelDesired): Promise<TunnelApplyReport> {
    return this.queue.run(() => (this.mode === 'ipip' ? this.applyIpip(desired) : this.applyVxlan(desired)));
  }

  /** VXLAN: deletes the device (its FDB and neighbour entries go with it). IPIP: see changedTunl0. */
  cleanup(): Promise<void> {
    return this.queue.run(async () => {
      const device = await this.readDevice();
      if (device === undefined) return;
      if (this.mode === 'vxlan') {
        await this.ip(['link', 'del', this.name]);
        return;
      }
      if (!this.changedTunl0) return;
      // The fallback tunl0 of a namespace cannot be deleted; bring it back down instead.
      const deleted = await runCommand('ip', [...namespaceArgs(this.netns), 'link', 'del', this.name], { allowFailure: true });
      if (deleted.exitCode !== 0) await this.ip(['link', 'set', 'dev', this.name, 'down']);
      this.changedTunl0 = false;
    });
  }

  private async ip(args: readonly string[]): Promise<void> {
    await runCommand('ip', [...namespaceArgs(this.netns), ...args]);
  }

  /** IPIP carries IPv4 only, to the route's gateway: the members need no per-peer state. */
  private async applyIpip(desired: TunnelDesired): Promise<TunnelApplyReport> {
    const rejected: WriteFailure[] = desired.members
      .filter((m) => m.internalIP.family !== 4)
      .map((m) => ({ what: `tunnel member ${formatIp(m.internalIP)}`, reason: 'field internalIP: IPIP carries IPv4 only' }));
    const device = await this.readDevice();
    const lines: BatchLine[] = [];
    if (device === undefined) lines.push(['link', 'add', this.name, 'type', 'ipip']);
    if (device?.up !== true) lines.push(['link', 'set', 'dev', this.name, 'up']);
    const written = await this.writeLinks(lines);
    if (lines.length > 0) this.changedTunl0 = true;
    if (rejected.length > 0) throw new PartialApplyError('tunnel', written, rejected);
    return { written };
  }

  private async applyVxlan(desired: TunnelDesired): Promise<TunnelApplyReport> {
    const local = formatIp(desired.localUnderlayIP);
    const underlayDevice = await this.deviceHolding(desired.localUnderlayIP);
    const mac = vxlanMacOf(desired.localUnderlayIP);
    const device = await this.readDevice();
    const lines: BatchLine[] = [];
    const fits =
      device !== undefined &&
      device.kind === 'vxlan' &&
      device.vni === this.vni &&
      device.port === this.port &&
      device.local === local &&
      device.underlayDevice === underlayDevice &&
      device.learning === false;
    if (device !== undefined && !fits) lines.push(['link', 'del', this.name]);
    if (!fits) {
      lines.push(
        ['link', 'add', this.name, 'address', mac, 'type', 'vxlan', 'id', String(this.vni), 'dstport', String(this.port), 'local', local, 'dev', underlayDevice, 'nolearning'],
        ['link', 'set', 'dev', this.name, 'addrgenmode', 'none'],
        ['link', 'set', 'dev', this.name, 'up'],
      );
    } else {
      if (device.mac?.toLowerCase() !== mac) lines.push(['link', 'set', 'dev', this.name, 'address', mac]);
      if (!device.up) lines.push(['link', 'set', 'dev', this.name, 'up']);
    }
    let written = await this.writeLinks(lines);

    const wanted = forwardingOf(desired);
    const [fdb, neighbours] = fits ? await Promise.all([this.readFdb(), this.readNeighbours()]) : [[], []];
    const writes = planForwarding(this.name, wanted, fdb, neighbours);
    const failures: WriteFailure[] = [...wanted.rejected];
    for (const [tool, batch] of [['bridge', writes.fdb], ['ip', writes.neighbours]] as const) {
      const outcome = await runForcedBatch(tool, batch, { netns: this.netns });
      written += outcome.written;
      for (const f of outcome.failures) failures.push({ what: `${tool} ${f.line}`, reason: f.reason });
    }
    if (failures.length > 0) throw new PartialApplyError('tunnel', written, failures);
    return { written };
  }

  /** Device writes are all-or-nothing: without the device nothing else can be written. */
  private async writeLinks(lines: readonly BatchLine[]): Promise<number> {
    const outcome = await runForcedBatch('ip', lines, { netns: this.netns });
    const failure = outcome.failures[0];
    if (failure !== undefined) throw new TunnelError(`tunnel device ${this.name}: "${failure.line}" failed: ${failure.reason}`);
    return outcome.written;
  }

  private async deviceHolding(ip: Ip): Promise<string> {
    const prefix = `${formatIp(ip)}/${ip.family === 4 ? 32 : 128}`;
    const links = await readIpJson(['addr', 'show', 'to', prefix], { netns: this.netns });
    const first = links[0];
    if (first === undefined) throw new TunnelError(`tunnel: field localUnderlayIP: ${formatIp(ip)} is not assigned to any interface`);
    return new IpJsonObject(first, 'ip addr entry').string('ifname');
  }

  private async readDevice(): Promise<DeviceState | undefined> {
    const result = await runCommand('ip', [...namespaceArgs(this.netns), '-j', '-d', 'link', 'show', 'dev', this.name], { allowFailure: true });
    if (result.exitCode !== 0) {
      if (/does not exist|cannot find device/i.test(result.stderr)) return undefined;
      throw new TunnelError(`tunnel: ip link show ${this.name}: ${firstLine(result.stderr)}`);
    }
    const [entry] = JSON.parse(result.stdout) as unknown[];
    const o = new IpJsonObject(entry, `ip link entry ${this.name}`);
    const info = o.object('linkinfo');
    const data = info?.object('info_data');
    const learning = data?.raw('learning');
    const local = data?.optionalString('local');
    return {
      kind: info?.optionalString('info_kind'),
      up: o.strings('flags').includes('UP'),
      mac: o.optionalString('address'),
      vni: data?.optionalNumber('id'),
      port: data?.optionalNumber('port'),
      local: local === undefined ? undefined : formatIp(parseIp(local)),
      underlayDevice: data?.optionalString('link'),
      learning: typeof learning === 'boolean' ? learning : undefined,
    };
  }

  private async readFdb(): Promise<FdbEntry[]> {
    const result = await runCommand('bridge', [...namespaceArgs(this.netns), '-j', 'fdb', 'show', 'dev', this.name]);
    const entries = result.stdout.trim() === '' ? [] : (JSON.parse(result.stdout) as unknown[]);
    return entries.map((value) => {
      const o = new IpJsonObject(value, 'bridge fdb entry');
      const dst = o.optionalString('dst');
      return { mac: o.string('mac'), dst: dst === undefined ? undefined : formatIp(parseIp(dst)), permanent: o.optionalString('state') === 'permanent' };
    });
  }

  private async readNeighbours(): Promise<NeighbourEntry[]> {
    const entries = await readIpJson(['neigh', 'show', 'dev', this.name], { netns: this.netns });
    return entries.map((value) => {
      const o = new IpJsonObject(value, 'ip neigh entry');
      return { ip: formatIp(parseIp(o.string('dst'))), mac: o.optionalString('lladdr'), permanent: o.strings('state').includes('PERMANENT') };
    });
  }
}
