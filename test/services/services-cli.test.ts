// `wirelane services` as operators run it: the compiled CLI on a cluster file (the setup script
// builds dist/).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServiceMapJSON } from '../../src/services/json.js';
import { cliPath } from '../../src/sandbox/mesh-cluster.js';

const FIXTURE = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..', 'fixtures', 'services.yaml');

function wirelane(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  // Without --from or --kubeconfig the command would read $KUBECONFIG's cluster.
  const env = { ...process.env };
  delete env['KUBECONFIG'];
  const r = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8', env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function mapOf(...args: string[]): ServiceMapJSON {
  const r = wirelane('services', '--from', FIXTURE, ...args);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout) as ServiceMapJSON;
}

describe('wirelane services', () => {
  test('has --help and is listed', () => {
    const help = wirelane('services', '--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: wirelane services --node NAME \[--from FILE \| --kubeconfig FILE\] \[-o json\] \[--nodeport-addresses CIDR,\.\.\.\]/);
    for (const flag of ['--nodeport-addresses', '--from FILE', '--kubeconfig FILE', '--strict']) assert.match(help.stdout, new RegExp(`^  ${flag} `, 'm'));
    assert.match(wirelane('--help').stdout, /^  services +print one node's service map/m);
  });

  test('prints the documented example for the DNS Service', () => {
    const map = mapOf('--node', 'n1', '-o', 'json');
    assert.equal(map.node, 'n1');
    const dns = map.servicePorts.find((p) => p.service === 'default/dns');
    assert.ok(dns);
    const documented = JSON.parse(
      '{"service": "default/dns", "portName": "udp-dns", "protocol": "UDP", "clusterIPs": ["10.96.0.10"], "port": 53, "nodePort": null, "externalIPs": [], "loadBalancerIPs": [], "sessionAffinityTimeoutSeconds": null, "healthCheckNodePort": null, "internalEndpoints": ["10.244.1.5:5353"], "externalEndpoints": ["10.244.1.5:5353"]}',
    ) as Record<string, unknown>;
    assert.deepEqual(Object.fromEntries(Object.entries(dns).slice(0, 12)), documented);
  });

  test('skips headless, ExternalName and other proxies\' Services, and FQDN slices', () => {
    assert.deepEqual(mapOf('--node', 'n1').servicePorts.map((p) => `${p.service}:${p.portName}/${p.protocol}`), ['default/dns:udp-dns/UDP', 'default/lb:/TCP', 'shop/web:http/TCP']);
  });

  test('the node\'s view: local endpoints, node port addresses and zone come from its Node object', () => {
    const [n1, n2] = [mapOf('--node', 'n1'), mapOf('--node', 'n2')];
    const web = (m: ServiceMapJSON) => m.servicePorts.find((p) => p.service === 'shop/web');
    assert.deepEqual(web(n1)?.externalEndpoints, ['10.244.1.7:8080']);
    assert.deepEqual(web(n2)?.externalEndpoints, ['10.244.2.7:8080', '[fd00:244:2::7]:8080']);
    assert.deepEqual(web(n1)?.internalEndpoints, ['10.244.1.7:8080', '10.244.2.7:8080', '[fd00:244:2::7]:8080']);
    assert.deepEqual(n1.nodePortAddresses, ['192.168.0.1', '203.0.113.1', 'fd00::1']);
    assert.deepEqual(n2.nodePortAddresses, ['192.168.0.2']);
    assert.deepEqual(n1.clusterCIDRs, ['10.244.1.0/24', '10.244.2.0/24', 'fd00:244:1::/64']);
    const lb = n1.servicePorts.find((p) => p.service === 'default/lb');
    assert.deepEqual([lb?.loadBalancerIPs, lb?.healthCheckNodePort, lb?.externalEndpoints], [['192.0.2.30'], 32000, []]);
  });

  test('--nodeport-addresses narrows the node port addresses', () => {
    assert.deepEqual(mapOf('--node', 'n1', '--nodeport-addresses', '192.168.0.0/16, fd00::/8').nodePortAddresses, ['192.168.0.1', 'fd00::1']);
  });

  test('failures are one line on stderr', () => {
    const cases: [string[], number, RegExp][] = [
      [['services', '--from', FIXTURE], 2, /^wirelane: --node is required$/],
      [['services', '--node', 'n1'], 2, /^wirelane: no Kubernetes credentials: give --kubeconfig, run in a pod, or give --from FILE$/],
      [['services', '--node', 'n1', '--from', FIXTURE, '--kubeconfig', FIXTURE], 2, /^wirelane: give --from FILE or --kubeconfig FILE, not both$/],
      [['services', '--from', FIXTURE, '--node', 'zz'], 1, /^wirelane: Node "zz": not in the cluster$/],
      [['services', '--from', '/nonexistent', '--node', 'n1'], 1, /^wirelane: \/nonexistent: no such file$/],
      [['services', '--from', FIXTURE, '--node', 'n1', '-o', 'yaml'], 2, /^wirelane: -o: "yaml" is not json$/],
      [['services', '--from', FIXTURE, '--node', 'n1', '--nodeport-addresses', '10.0.0.0/40'], 2, /^wirelane: --nodeport-addresses: "10.0.0.0\/40" is not a CIDR/],
    ];
    for (const [args, code, message] of cases) {
      const r = wirelane(...args);
      assert.equal(r.code, code, args.join(' '));
      assert.match(r.stderr.trimEnd(), message, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    }
  });

  describe('a malformed value is one warning naming the document, object and field; the rest is computed', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'wirelane-services-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    const node = 'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.244.1.0/24}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n';
    const good = (name: string, ip: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: shop}\nspec: {clusterIP: ${ip}, ports: [{port: 80}]}\n`;
    const run = async (name: string, docs: readonly string[], strict = false) => {
      const file = join(dir, `${name}.yaml`);
      await writeFile(file, [node, ...docs].join('---\n'));
      return { file, ...wirelane('services', '--from', file, '--node', 'n1', ...(strict ? ['--strict'] : [])) };
    };
    const servicesOf = (stdout: string) => (JSON.parse(stdout) as ServiceMapJSON).servicePorts.map((p) => p.service);

    test('one Service with a bad clusterIP among two good ones: the two, one warning, exit 0; --strict exit 1', async () => {
      const docs = [good('a', '10.96.0.1'), good('bad', '10.96.0.300'), good('c', '10.96.0.3')];
      const r = await run('cluster-ip', docs);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(servicesOf(r.stdout), ['shop/a', 'shop/c']);
      const warning = `wirelane: warning: ${r.file}: document 3 (Service "bad"): Service "shop/bad": spec.clusterIP: "10.96.0.300" is not an IP address\n`;
      assert.equal(r.stderr, warning);
      const strict = await run('cluster-ip', docs, true);
      assert.equal(strict.code, 1);
      assert.equal(strict.stdout, '');
      assert.equal(strict.stderr, `${warning}wirelane: --strict: 1 problem in the input (above)\n`);
    });

    const cases: [string, string, string][] = [
      ['a Service', 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80, protocol: ICMP}]}\n', 'document 3 (Service "web"): Service "default/web": spec.ports[0].protocol: "ICMP" is not one of TCP, UDP, SCTP'],
      [
        'an EndpointSlice',
        'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.300]}]\n',
        'document 3 (EndpointSlice "web-1"): EndpointSlice "shop/web-1": endpoints[0].addresses[0]: "10.0.0.300" is not an IP address',
      ],
    ];
    for (const [name, doc, message] of cases) {
      test(name, async () => {
        const r = await run(name.replace(/\W/g, ''), [good('ok', '10.96.0.9'), doc]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, `wirelane: warning: ${r.file}: ${message}\n`);
        assert.deepEqual(servicesOf(r.stdout), ['shop/ok']);
      });
    }

    test('a Node address or pod CIDR is skipped, the node keeps the rest', async () => {
      const file = join(dir, 'node.yaml');
      const n2 = 'apiVersion: v1\nkind: Node\nmetadata: {name: n2}\nspec: {podCIDR: 10.244.2.0/24}\n';
      await writeFile(
        file,
        `apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDRs: [10.244.0.0/99, 10.244.1.0/24]}\nstatus: {addresses: [{type: InternalIP, address: 192.168.0.300}, {type: InternalIP, address: 192.168.0.1}]}\n---\n${n2}`,
      );
      const r = wirelane('services', '--from', file, '--node', 'n1');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        r.stderr,
        [
          `wirelane: warning: ${file}: document 1 (Node "n1"): Node "n1": spec.podCIDRs: "10.244.0.0/99" is not a CIDR (bad prefix length)`,
          `wirelane: warning: ${file}: document 1 (Node "n1"): Node "n1": status.addresses[0].address: "192.168.0.300" is not an IP address`,
          '',
        ].join('\n'),
      );
      const map = JSON.parse(r.stdout) as ServiceMapJSON;
      assert.deepEqual(map.nodePortAddresses, ['192.168.0.1']);
      assert.deepEqual(map.clusterCIDRs, ['10.244.1.0/24', '10.244.2.0/24']);
    });
  });
});
