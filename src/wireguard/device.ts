// One WireGuard interface on the host, optionally inside a network namespace: created with the
// kernel module when there is one, else served by wireguard-go (a supervised child, or one that
// another process runs: see `userspace`); configured with `wg`.
//
// wireguard-go's UAPI sockets live in /var/run/wireguard/NAME.sock, a directory every network
// namespace shares (it is a mount, not a netns object). Two wireguard-go devices with the same
// name in different namespaces collide, so names must be unique per machine — tests included.
//
// Key material (the private key read back by `wg showconf`, preshared keys) stays in memory
// except for the moment `wg addconf` reads it from a private tmpfs file (secret-file.ts); errors from `wg` are rebuilt without its stdout and with
// anything key-shaped in stderr masked (wg echoes a rejected config line verbatim).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, commandLine, runCommand } from '../host/command.js';
import { type InterfaceAddress, listAddresses } from '../host/addresses.js';
import { runIp } from '../host/ip.js';
import { type Link, findLink } from '../host/links.js';
import { type Cidr, equalCidr, formatCidr, parseIp } from '../model/ip.js';
import { firstLine } from '../observability/first-line.js';
import { type DiffOptions, describeDiff, diffConfig } from './compare.js';
import { parseConfig } from './conf-text.js';
import type { WireGuardConfig } from './config.js';
import { type WireGuardStatus, parseDump } from './dump.js';
import { type HostLookup, lookupHost, resolveEndpoints } from './resolve.js';
import { withSecretFile } from './secret-file.js';
import { planWrites } from './update.js';
import { UAPI_DIR, uapiSocketAnswers as socketAnswers, uapiSocketPath } from './uapi-socket.js';
import { checkConfig } from './validate.js';

export type WireGuardBackend = 'kernel' | 'userspace';

/**
 * Who runs wireguard-go where the kernel has no WireGuard. `child`: this process starts it, and it
 * dies with this process's container. `external`: another process runs it (the DaemonSet's
 * wireguard container, `wirelane wireguard-go`), so the tunnel outlives the agent's restarts;
 * ensure() waits for its device and adopts it, and nothing here starts or signals one (destroy()
 * still deletes the device, which ends the wireguard-go serving it).
 */
export type UserspaceWireGuard = 'child' | 'external';

export const USERSPACE_WIREGUARD_CHOICES: readonly UserspaceWireGuard[] = ['child', 'external'];

/** A wireguard-go child that ended without destroy() asking it to. */
export interface BackendExit {
  readonly name: string;
  readonly pid: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The last few KiB of its stdout and stderr. */
  readonly output: string;
}

export interface WireGuardDeviceOptions {
  /** Interface name, at most 15 characters; unique per machine for wireguard-go (see above). */
  readonly name: string;
  readonly netns?: string;
  /** 'auto' (default) tries the kernel module and falls back to wireguard-go. */
  readonly backend?: 'auto' | WireGuardBackend;
  readonly wireguardGo?: string;
  /** Default `child`. */
  readonly userspace?: UserspaceWireGuard;
  /** Where a wireguard-go this object starts writes its output; default <tmpdir>/wirelane-wireguard-go-NAME.log. */
  readonly outputFile?: string;
  /** How long wireguard-go may take to bring up its socket and link (`external`: to appear); default 10 s. */
  readonly readyTimeoutMs?: number;
  /**
   * Called when a wireguard-go child exits unexpectedly. Its link is gone with it, along with
   * addresses and routes on it: call ensure() and re-apply everything.
   */
  readonly onBackendExit?: (exit: BackendExit) => void;
  /**
   * `external`: called when the wireguard-go serving an adopted device stops answering (its
   * container restarted). The link is gone with it, along with addresses and routes on it: call
   * ensure(), which waits for the next one, and re-apply everything.
   */
  readonly onExternalGone?: () => void;
  /** How often an adopted external wireguard-go is checked; default 1 s. */
  readonly watchIntervalMs?: number;
  /** Resolves DNS-named endpoints before comparing; default: the system resolver. */
  readonly lookupHost?: HostLookup;
}

export interface EnsureResult {
  readonly backend: WireGuardBackend;
  /** False when the interface already existed (ours from before, or left by an earlier agent). */
  readonly created: boolean;
  /** The wireguard-go process this object supervises; undefined for the kernel or an adopted one. */
  readonly pid?: number;
}

export interface ApplyResult {
  readonly written: boolean;
  /** What was written, one line per change, public keys only (describeDiff). */
  readonly changes: readonly string[];
  /** Peers whose DNS endpoint did not resolve and were applied without an endpoint. */
  readonly unresolved: readonly string[];
}

export class WireGuardDeviceError extends Error {
  override readonly name = 'WireGuardDeviceError';
}

const OUTPUT_TAIL_BYTES = 4096;
const KEY_SHAPED = /[A-Za-z0-9+/]{43}=/g;

export class WireGuardDevice {
  readonly name: string;
  readonly netns: string | undefined;
  private readonly options: WireGuardDeviceOptions;
  private backendInUse: WireGuardBackend | undefined;
  private child: ChildProcess | undefined;
  private childReady = false;
  private stopping = false;
  private watch: NodeJS.Timeout | undefined;
  /** Configs found valid: the same object applied again (a resync with nothing changed) is not checked again. */
  private readonly checked = new WeakSet<WireGuardConfig>();

  constructor(options: WireGuardDeviceOptions) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(options.name)) {
      throw new WireGuardDeviceError(`WireGuard interface "${options.name}": name must be 1-15 characters of [A-Za-z0-9_.-]`);
    }
    this.name = options.name;
    this.netns = options.netns;
    this.options = options;
  }

  /** The backend found or created by the last ensure(); undefined before, or after it died. */
  get backend(): WireGuardBackend | undefined {
    return this.backendInUse;
  }

  /** PID of the supervised wireguard-go, if this object started one that is still running. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get socketPath(): string {
    return uapiSocketPath(this.name);
  }

  /**
   * Creates the interface unless it exists; idempotent. `links`: the host's links as read moments
   * ago (the mesh's discovery), so that a device there needs no read of its own; one absent from
   * them is looked for again before anything is created.
   */
  async ensure(links?: readonly Link[]): Promise<EnsureResult> {
    this.stopping = false;
    const link = links?.find((l) => l.name === this.name) ?? (await this.findLink());
    // An external wireguard-go's TUN link may be there before its socket: wait for the socket.
    if (link !== undefined) return this.adopt(link.kind === 'tun' && this.options.userspace === 'external' ? await this.awaitExternal() : link);
    const wanted = this.options.backend ?? 'auto';
    if (wanted !== 'userspace') {
      const added = await runCommand('ip', ['link', 'add', this.name, 'type', 'wireguard'], { netns: this.netns, allowFailure: true });
      if (added.exitCode === 0) {
        this.backendInUse = 'kernel';
        return { backend: 'kernel', created: true };
      }
      if (wanted === 'kernel') {
        throw new WireGuardDeviceError(`${this.where()}: the kernel cannot create it: ${added.stderr.trim()}`);
      }
    }
    if (this.options.userspace === 'external') return this.adopt(await this.awaitExternal());
    const pid = await this.startWireguardGo();
    this.backendInUse = 'userspace';
    return { backend: 'userspace', created: true, pid };
  }

  /** The device's config as `wg showconf` prints it, private key included: never log it. */
  async read(): Promise<WireGuardConfig> {
    return parseConfig(await this.runWg(['showconf', this.name]));
  }

  /** Live state per peer: latest handshake, transfer counters, the endpoint in use. */
  async dump(): Promise<WireGuardStatus> {
    return parseDump(await this.runWg(['show', this.name, 'dump']));
  }

  /**
   * Makes the device hold `desired`, writing only when it differs semantically (see compare.ts):
   * removed peers go, changed peers get only their changed fields, unchanged peers keep their
   * sessions. DNS endpoints are resolved first so that they compare against what `wg` shows.
   */
  async apply(desired: WireGuardConfig, options: DiffOptions = {}): Promise<ApplyResult> {
    if (!this.checked.has(desired)) {
      checkConfig(desired);
      this.checked.add(desired);
    }
    const { config, unresolved } = await resolveEndpoints(desired, this.options.lookupHost ?? lookupHost);
    const diff = diffConfig(await this.read(), config, options);
    if (!diff.changed) return { written: false, changes: [], unresolved };
    const writes = planWrites(diff);
    if (writes.setArgs.length > 0) await this.runWg(['set', this.name, ...writes.setArgs]);
    const addconf = writes.addconf;
    if (addconf !== undefined) await withSecretFile(addconf, (path) => this.runWg(['addconf', this.name, path]));
    return { written: true, changes: describeDiff(diff), unresolved };
  }

  /**
   * Gives the interface exactly this address (host bits kept: 10.4.0.1/16), or none. Link-local
   * addresses are the kernel's and are left alone. Returns whether anything changed.
   */
  async setAddress(cidr: Cidr | undefined): Promise<boolean> {
    return this.setAddresses(cidr === undefined ? [] : [cidr]);
  }

  /**
   * Gives the interface exactly these addresses (a Peer's: one per family); see setAddress.
   * `known`: the host's addresses as read moments ago, with nothing written to the device since.
   */
  async setAddresses(cidrs: readonly Cidr[], known?: readonly InterfaceAddress[]): Promise<boolean> {
    const { added, removed } = await this.changeAddresses(cidrs, known);
    return added + removed > 0;
  }

  /** setAddresses, counting the addresses added and removed (a removal takes the kernel's routes from that address with it). */
  async changeAddresses(cidrs: readonly Cidr[], known?: readonly InterfaceAddress[]): Promise<{ added: number; removed: number }> {
    const read = known?.filter((a) => a.ifname === this.name) ?? (await listAddresses({ netns: this.netns, ifname: this.name }));
    const current = read.filter((a) => a.scope !== 'link');
    const cidrOf = (a: InterfaceAddress): Cidr => {
      const ip = parseIp(a.address);
      return { family: ip.family, addr: ip.value, bits: a.prefixLength };
    };
    const changes = { added: 0, removed: 0 };
    for (const address of current.filter((a) => !cidrs.some((c) => equalCidr(cidrOf(a), c)))) {
      await runIp(['addr', 'del', address.cidr, 'dev', this.name], { netns: this.netns });
      changes.removed += 1;
    }
    for (const cidr of cidrs.filter((c) => !current.some((a) => equalCidr(cidrOf(a), c)))) {
      await runIp(['addr', 'add', formatCidr(cidr), 'dev', this.name], { netns: this.netns });
      changes.added += 1;
    }
    return changes;
  }

  async setMtu(mtu: number): Promise<boolean> {
    if ((await this.requireLink()).mtu === mtu) return false;
    await runIp(['link', 'set', 'dev', this.name, 'mtu', String(mtu)], { netns: this.netns });
    return true;
  }

  /**
   * The MTU and the admin state with one read and at most one `ip link set` (each command costs the
   * agent a fork of itself); says which of the two changed.
   */
  async setLink(wanted: { readonly mtu: number; readonly up: boolean }, known?: Link): Promise<{ mtu: boolean; up: boolean }> {
    // `known`: the device as read moments ago, with nothing written to it since.
    const link = known?.name === this.name ? known : await this.requireLink();
    const changed = { mtu: link.mtu !== wanted.mtu, up: link.up !== wanted.up };
    const args = [...(changed.mtu ? ['mtu', String(wanted.mtu)] : []), ...(changed.up ? [wanted.up ? 'up' : 'down'] : [])];
    if (args.length > 0) await runIp(['link', 'set', 'dev', this.name, ...args], { netns: this.netns });
    return changed;
  }

  async up(): Promise<boolean> {
    return this.setUp(true);
  }

  async down(): Promise<boolean> {
    return this.setUp(false);
  }

  /** Deletes the link and stops the wireguard-go this object started; idempotent. */
  async destroy(): Promise<void> {
    this.stopping = true;
    this.stopWatching();
    // Deleting the TUN link makes wireguard-go exit by itself, cleaning up its socket.
    await runCommand('ip', ['link', 'del', this.name], { netns: this.netns, allowFailure: true });
    const child = this.child;
    if (child !== undefined) await stopProcess(child, this.socketPath);
    await rm(this.logPath, { force: true });
    this.backendInUse = undefined;
  }

  /**
   * Stops supervising without stopping anything: the wireguard-go this object started keeps serving
   * the device after this process exits (--clean-up=false), and the next agent adopts it.
   */
  release(): void {
    this.stopping = true;
    this.stopWatching();
    this.child?.unref();
  }

  private async adopt(link: Link): Promise<EnsureResult> {
    if (link.kind === 'wireguard') {
      this.backendInUse = 'kernel';
      return { backend: 'kernel', created: false };
    }
    if (link.kind === 'tun' && (await socketAnswers(this.socketPath))) {
      this.backendInUse = 'userspace';
      if (this.options.userspace === 'external') this.watchExternal();
      return { backend: 'userspace', created: false, ...(this.child?.pid === undefined ? {} : { pid: this.child.pid }) };
    }
    throw new WireGuardDeviceError(`${this.where()}: a ${link.kind ?? 'plain'} link that is not WireGuard already has this name`);
  }

  /** Polls the adopted external wireguard-go's socket (a cheap connect) until it stops answering. */
  private watchExternal(): void {
    if (this.watch !== undefined || this.options.onExternalGone === undefined) return;
    let checking = false;
    this.watch = setInterval(() => {
      if (checking) return;
      checking = true;
      void socketAnswers(this.socketPath).then((answers) => {
        checking = false;
        if (answers || this.stopping || this.watch === undefined) return;
        this.stopWatching();
        this.backendInUse = undefined;
        this.options.onExternalGone?.();
      });
    }, this.options.watchIntervalMs ?? 1000);
    // Watching must not keep a stopping agent alive.
    this.watch.unref();
  }

  private stopWatching(): void {
    clearInterval(this.watch);
    this.watch = undefined;
  }

  /**
   * Waits for the external wireguard-go to serve the device. Its TUN link appears a moment before
   * its socket answers, so a TUN link alone is not yet a device to adopt.
   */
  private async awaitExternal(): Promise<Link> {
    const timeoutMs = this.options.readyTimeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const link = await this.findLink();
      if (link !== undefined && (link.kind !== 'tun' || (await socketAnswers(this.socketPath)))) return link;
      if (Date.now() > deadline) {
        throw new WireGuardDeviceError(
          `${this.where()}: no wireguard-go serves it after ${timeoutMs} ms; with --userspace-wireguard external ` +
            `the DaemonSet's wireguard container (wirelane wireguard-go) runs it`,
        );
      }
      await sleep(100);
    }
  }

  private async startWireguardGo(): Promise<number> {
    if (await socketAnswers(this.socketPath)) {
      throw new WireGuardDeviceError(
        `${this.where()}: another wireguard-go already serves ${this.socketPath}; ` +
          `${UAPI_DIR} is shared by all network namespaces, so interface names must be unique per machine`,
      );
    }
    const [bin, ...args] = commandLine(this.options.wireguardGo ?? 'wireguard-go', ['-f', this.name], this.netns) as [string, ...string[]];
    // Its output goes to a file, not a pipe: after release() it outlives this process, and Go
    // dies of SIGPIPE on its next log line into a pipe nobody reads. Not execa either: it buffers
    // a child's whole output; a tail of the file is enough for errors.
    const log = openSync(this.logPath, 'w', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(bin, args, {
        stdio: ['ignore', log, log],
        env: { ...process.env, LOG_LEVEL: 'error', WG_PROCESS_FOREGROUND: '1' },
      });
    } finally {
      closeSync(log);
    }
    this.child = child;
    this.childReady = false;
    let spawnError: Error | undefined;
    child.on('error', (error) => {
      spawnError = error;
    });
    child.on('exit', (code, signal) => this.childExited(child, code, signal));

    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 10_000);
    for (;;) {
      if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
        const why = spawnError?.message ?? `exited (${child.exitCode ?? child.signalCode})`;
        this.child = undefined;
        throw new WireGuardDeviceError(`${this.where()}: wireguard-go ${why}: ${this.outputTail().trim().split('\n').pop() ?? ''}`);
      }
      if ((await socketAnswers(this.socketPath)) && (await this.findLink()) !== undefined) break;
      if (Date.now() > deadline) {
        await stopProcess(child, this.socketPath);
        this.child = undefined;
        throw new WireGuardDeviceError(`${this.where()}: wireguard-go did not come up within ${this.options.readyTimeoutMs ?? 10_000} ms`);
      }
      await sleep(50);
    }
    this.childReady = true;
    return child.pid as number;
  }

  /** Where a wireguard-go this object starts writes its output. */
  get logPath(): string {
    return this.options.outputFile ?? join(tmpdir(), `wirelane-wireguard-go-${this.name}.log`);
  }

  private outputTail(): string {
    try {
      const data = readFileSync(this.logPath);
      return data.subarray(Math.max(0, data.length - OUTPUT_TAIL_BYTES)).toString();
    } catch {
      return '';
    }
  }

  private childExited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.child) return;
    const wasReady = this.childReady;
    this.child = undefined;
    this.childReady = false;
    if (this.stopping || !wasReady) return;
    this.backendInUse = undefined;
    this.options.onBackendExit?.({ name: this.name, pid: child.pid as number, code, signal, output: this.outputTail() });
  }

  private async setUp(up: boolean): Promise<boolean> {
    if ((await this.requireLink()).up === up) return false;
    await runIp(['link', 'set', 'dev', this.name, up ? 'up' : 'down'], { netns: this.netns });
    return true;
  }

  private findLink(): Promise<Link | undefined> {
    return findLink(this.name, { netns: this.netns });
  }

  private async requireLink(): Promise<Link> {
    const link = await this.findLink();
    if (link === undefined) throw new WireGuardDeviceError(`${this.where()}: does not exist (call ensure() first)`);
    return link;
  }

  /** Runs wg; a failure becomes an error without wg's stdout and with key-shaped text masked. */
  private async runWg(args: readonly string[]): Promise<string> {
    try {
      return (await runCommand('wg', args, { netns: this.netns })).stdout;
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      const detail = firstLine(error.stderr).replace(KEY_SHAPED, '(key)');
      if (error.timedOut) throw new WireGuardDeviceError(`${this.where()}: wg ${args[0]} ${error.reason}`);
      const status = error.exitCode === undefined ? 'did not run' : `exit code ${error.exitCode}`;
      throw new WireGuardDeviceError(`${this.where()}: wg ${args[0]} failed (${status}): ${detail}`);
    }
  }

  private where(): string {
    return `WireGuard interface "${this.name}"${this.netns === undefined ? '' : ` in netns ${this.netns}`}`;
  }
}

/** Waits for the child to exit, escalating TERM then KILL; a killed child leaves a stale socket to remove. */
async function stopProcess(child: ChildProcess, socketPath: string): Promise<void> {
  if (await exited(child, 2000)) return;
  child.kill('SIGTERM');
  if (await exited(child, 2000)) return;
  child.kill('SIGKILL');
  await exited(child, 2000);
  await rm(socketPath, { force: true });
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
