// Issue 10, item 4: removing everything is an explicit act. `wirelane cleanup` after an agent that
// ran with --clean-up=false, in each service proxy mode, leaves the node as it was before the agent
// started (links, addresses, routes, rules, iptables-save in both families, bpftool, pins (the
// fast path's too), the wireguard-go socket, processes, the Node's annotations); a second run finds nothing, and so does a
// run on a clean node.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { generatePrivateKey, publicKeyOf } from '../../src/model/key.js';
import { cliPath, type MeshCluster } from '../../src/sandbox/mesh-cluster.js';
import { AGENT_WRITTEN, PREFIX } from '../../src/sources/annotations.js';
import type { KubeApiServer } from '../kube-apiserver/index.js';
import { startServiceNode, waitForService } from '../harness/service-node.js';
import { AGENT_TOOLS, capabilitySkip } from '../support/capability.js';
import { existingLinks, nodeState, pinnedLinkIds } from '../support/leftovers.js';

const skip = await capabilitySkip('wirelane cleanup test', [...AGENT_TOOLS, ['bpftool', ['version']]]);

/** `wirelane cleanup` in node a's namespace with the agent's placement flags. */
async function cleanup(cluster: MeshCluster): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = [cliPath(), 'cleanup', '--interface', cluster.interfaceOf('a'), '--bpf-dir', join(cluster.bpffs, 'a'), '--cgroup-root', cluster.sandbox.visibleCgroupOf('a')!];
  const r = await cluster.sandbox.exec(cluster.sandbox.node('a'), process.execPath, [...args, '--annotations', '--kubeconfig', cluster.kubeconfig, '--hostname', 'a'], { allowFailure: true });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

async function state(cluster: MeshCluster, api: KubeApiServer) {
  const annotations = Object.keys(api.get('nodes', 'a')?.metadata.annotations ?? {}).filter((k) => AGENT_WRITTEN.some((s) => k === PREFIX + s));
  return { ...(await nodeState(cluster, 'a')), annotations };
}

test('wirelane cleanup leaves the node as before the agent ran, in every mode, twice in a row, and on a clean node', { skip }, async (t) => {
  // Every part of the mesh too: the VXLAN device (--encapsulate), the FORWARD chain, and a Peer's
  // route over the WireGuard device.
  const { cluster, api } = await startServiceNode(t, ['--resync-period', '5s', '--clean-up=false', '--encapsulate', 'always', '--iptables-forward-rules']);
  api!.create('peers', { metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: publicKeyOf(generatePrivateKey()) } });
  const before = await state(cluster, api!);

  const clean = await cleanup(cluster);
  assert.deepEqual(clean, { code: 0, stdout: '', stderr: '' }, 'on a clean node: nothing to do');
  assert.deepEqual(await state(cluster, api!), before);

  for (const mode of ['ebpf', 'iptables', 'userspace'] as const) {
    cluster.startAgent('a', ['--service-proxy', mode]);
    await cluster.waitReady(['a']);
    await waitForService(cluster);
    const during = await state(cluster, api!);
    const links = [...(await pinnedLinkIds(cluster, 'a')), ...(await pinnedLinkIds(cluster, 'a', 'fast-path/links/'))];
    // SIGTERM with --clean-up=false: the agent leaves everything, wireguard-go included.
    await cluster.stopAgent('a');
    for (const made of [`${cluster.interfaceOf('a')} tun`, 'wirelane.vx vxlan']) {
      assert.ok(during.links.some((l) => l.startsWith(made)), `${mode}: the agent made ${made}: ${during.links.join(', ')}`);
    }
    assert.ok(during.iptables.some((l) => l.startsWith(':WIRELANE-FORWARD')), `${mode}: the agent made its chains`);
    assert.ok(during.routes.some((r) => r.startsWith('main 10.5.0.1/32 ')), `${mode}: the agent routed to the Peer: ${during.routes.join(', ')}`);
    assert.ok(during.annotations.length > 0, `${mode}: the agent annotated its Node`);

    const first = await cleanup(cluster);
    assert.equal(first.code, 0, `${mode}: ${first.stderr}`);
    assert.match(first.stdout, /^removed wireguard: WireGuard device /m, `${mode}: ${first.stdout}`);
    assert.match(first.stdout, /^removed routes and rules: /m, `${mode}: ${first.stdout}`);
    assert.match(first.stdout, new RegExp(`^removed ${mode} service proxy: `, 'm'), `${mode}: ${first.stdout}`);
    // The fast path (--fast-path auto: on here) on the pods' veths, the underlay and WireGuard.
    assert.match(first.stdout, /^removed fast path: \d+ fast-path tc programs detached$/m, `${mode}: ${first.stdout}`);
    assert.deepEqual(await state(cluster, api!), before, `${mode}: the node is as it was`);
    assert.deepEqual(await existingLinks(links), [], `${mode}: no eBPF link of the run is left`);

    assert.deepEqual(await cleanup(cluster), { code: 0, stdout: '', stderr: '' }, `${mode}: a second run finds nothing`);
    assert.deepEqual(await state(cluster, api!), before, `${mode}: and changes nothing`);
  }
});
