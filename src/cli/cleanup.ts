// `wirelane cleanup`: removes everything the agent can make on this host, whichever mode and run
// made it, by the same code as the agent's --clean-up on exit (agent/host-cleanup.ts). For an
// uninstall (deploy/uninstall/) or by hand, with the agent stopped.
import { hostname } from 'node:os';
import { type RemoveAnnotations, hostPlacementOf, removeHostState } from '../agent/host-cleanup.js';
import { AnnotationsDirWriter } from '../sources/file/annotations-dir.js';
import { CNI_FILE_OPTIONS, parsePlacementFlags } from './agent.js';
import { kubeconfigPath } from './kubeconfig.js';
import type { Command, Values } from './command.js';
import { parseLogLevelFlag, stringFlag, switchFlag } from './flags.js';

export const cleanup: Command = {
  name: 'cleanup',
  summary: 'remove everything the agent made on this host, whatever mode made it',
  usage: 'wirelane cleanup [flags]',
  help: `Removes, on this host (run it in the host's network namespace, with the agent stopped): the
WireGuard device (kernel or wireguard-go) and a stale wireguard-go socket, routes with protocol 0x57
(every table) and rules of priority 1107, the VXLAN device wirelane.vx, iptables chains WIRELANE-*,
WLSVC-* and WLPROXY-* with their jumps (IPv4 and IPv6, the backend of the host's iptables), eBPF
programs (cgroup links, tc links, tc filters) and their pins, and the CNI configuration list when it
is the agent's (network "wirelane"; the bridge and running pods stay). With --annotations also the Node's
agent-written annotations; with --annotations-dir the node's file of shared annotations there (the
file source's). Safe to run again and on a clean host. The private key in the state
directory stays.

Flags (the agent's, for the same host):
  --interface NAME          WireGuard interface (default wirelane0)
  --bpf-dir PATH            where the eBPF data path pinned maps and links (default: <bpffs>/wirelane)
  --cgroup-root PATH        accepted as the agent takes it; the socket programs are found through
                            their pins in --bpf-dir
  --cni-conf-dir DIR        where the agent wrote its CNI configuration (default /etc/cni/net.d)
  --cni-conf-name NAME      its file name (default 10-wirelane.conflist)
  --annotations[=true]      also remove the Node's agent-written annotations (default false)
  --kubeconfig FILE         for --annotations (default: $KUBECONFIG, else in-cluster credentials)
  --annotations-dir DIR     also remove DIR/<node>.json (the agent's --annotations-dir)
  --hostname NAME           the Node for --annotations and --annotations-dir (default: the host name)
  --log-level debug         a failure's stack trace on stderr

Prints one line per thing removed. Exit 0 when nothing of the agent's is left (nothing printed on a
clean host); 1 when a part could not be removed (every other part is still removed; one line on
stderr names each failed part); 2 for bad flags.`,
  switches: ['annotations'],
  options: {
    interface: { type: 'string', default: 'wirelane0' },
    'bpf-dir': { type: 'string' },
    'cgroup-root': { type: 'string' },
    ...CNI_FILE_OPTIONS,
    annotations: { type: 'string' },
    kubeconfig: { type: 'string' },
    'annotations-dir': { type: 'string' },
    hostname: { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
  },
  async run(values) {
    parseLogLevelFlag(stringFlag(values, 'log-level') ?? 'info');
    const placement = hostPlacementOf(parsePlacementFlags(values));
    const report = await removeHostState(placement, annotationRemoval(values));
    for (const line of report.removed) process.stdout.write(`removed ${line}\n`);
    if (report.failures.length === 0) return 0;
    throw new Error(`cleanup: ${report.failures.length} part${report.failures.length === 1 ? '' : 's'} not removed: ${report.failures.join('; ')}`);
  },
};

function annotationRemoval(values: Values): RemoveAnnotations | undefined {
  const dir = stringFlag(values, 'annotations-dir');
  const fromApi = apiAnnotationRemoval(values);
  if (dir === undefined) return fromApi;
  const shared = new AnnotationsDirWriter(dir);
  const node = stringFlag(values, 'hostname') ?? hostname();
  return async () => [...(await shared.unpublishNode(node)), ...((await fromApi?.()) ?? [])];
}

function apiAnnotationRemoval(values: Values): RemoveAnnotations | undefined {
  if (!switchFlag(values, 'annotations', false)) return undefined;
  const kubeconfig = kubeconfigPath(stringFlag(values, 'kubeconfig'), 'or leave out --annotations');
  const node = stringFlag(values, 'hostname') ?? hostname();
  return async () => {
    // Loaded only here: a host clean-up needs the API only for this.
    const [{ loadKubeAccess }, { removeAgentAnnotations }] = await Promise.all([
      import('../sources/kubernetes/kube-access.js'),
      import('../sources/kubernetes/node-annotations.js'),
    ]);
    return removeAgentAnnotations({ access: await loadKubeAccess(kubeconfig) }, node);
  };
}
