import { nodeConfig, peerConfig, segmentAsPeer } from '../mesh/wireguard.js';
import { renderConfig } from '../wireguard/conf-text.js';
import { type Command, UsageError } from './command.js';
import { MESH_FLAGS_HELP, MESH_OPTIONS, MESH_SWITCHES, anyReadyNode, meshTopologyOf, readMeshInput } from './mesh-command-input.js';
import { booleanFlag } from './flags.js';

export const showconf: Command = {
  name: 'showconf',
  summary: 'print the WireGuard configuration of a node or a Peer (without private keys)',
  usage: 'wirelane showconf node NAME [--from FILE | --kubeconfig FILE] [--as-peer] [mesh flags]\n       wirelane showconf peer NAME [--from FILE | --kubeconfig FILE] [mesh flags]',
  help: `'node NAME' prints NAME's device: [Interface] with its listen port (no private key) and one
[Peer] per remote segment and per Peer. With --as-peer it prints NAME's segment as the single
[Peer] a WireGuard host outside the cluster adds. 'peer NAME' prints what the Peer NAME needs:
one [Peer] per segment and per other Peer; add its own [Interface] (PrivateKey, ListenPort).
Preshared keys print as ${'`'}(hidden)${'`'} unless --show-keys is given.

Flags:
  --as-peer                 node only: the node's segment as one [Peer]
  --show-keys               print preshared keys (for a configuration to install, not a terminal)
${MESH_FLAGS_HELP}`,
  switches: MESH_SWITCHES,
  allowPositionals: true,
  options: { ...MESH_OPTIONS, 'as-peer': { type: 'boolean', default: false }, 'show-keys': { type: 'boolean', default: false } },
  async run(values, positionals) {
    const [kind, name, ...extra] = positionals;
    if ((kind !== 'node' && kind !== 'peer') || name === undefined || extra.length > 0) {
      throw new UsageError('want: showconf node NAME | showconf peer NAME');
    }
    const asPeer = booleanFlag(values, 'as-peer');
    if (asPeer && kind === 'peer') throw new UsageError('--as-peer goes with showconf node');
    const render = { hideKeys: !booleanFlag(values, 'show-keys') };
    const mesh = await readMeshInput(values);
    const t = meshTopologyOf(mesh, kind === 'node' ? name : anyReadyNode(mesh));
    let text: string;
    if (kind === 'peer') {
      text = renderConfig(peerConfig(t, name), render);
    } else if (asPeer) {
      text = renderConfig({ interface: {}, peers: [segmentAsPeer(t, t.segment.key)] }, render);
    } else {
      const note = t.leader ? '' : `# ${name} is not the leader of ${t.segment.key}: its device stays down (leader: ${t.segment.leader.name}).\n`;
      text = note + renderConfig(nodeConfig(t), render);
    }
    process.stdout.write(text);
    return 0;
  },
};
