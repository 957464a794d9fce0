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
  const r = spawnSync(process.execPath, [cliPath(), ...args], { encoding: 'utf8' });
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
    assert.match(help.stdout, /^Usage: wirelane services --from FILE --node NAME \[-o json\] \[--nodeport-addresses CIDR,\.\.\.\]/);
    assert.match(help.stdout, /--nodeport-addresses/);
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
      [['services', '--node', 'n1'], 2, /^wirelane: --from is required$/],
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

  describe('a malformed object is one error naming the document and the object', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'wirelane-services-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    const node = 'apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n';
    const cases: [string, string, string][] = [
      ['a Service', 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.1, ports: [{port: 80, protocol: ICMP}]}\n', 'document 2 (Service "web"): Service "default/web": spec.ports[0].protocol: "ICMP" is not one of TCP, UDP, SCTP'],
      [
        'an EndpointSlice',
        'apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.300]}]\n',
        'document 2 (EndpointSlice "web-1"): EndpointSlice "shop/web-1": endpoints[0].addresses[0]: "10.0.0.300" is not an IP address',
      ],
    ];
    for (const [name, doc, message] of cases) {
      test(name, async () => {
        const file = join(dir, `${name.replace(/\W/g, '')}.yaml`);
        await writeFile(file, `${node}---\n${doc}`);
        const r = wirelane('services', '--from', file, '--node', 'n1');
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `wirelane: ${file}: ${message}\n`);
        assert.equal(r.stdout, '');
      });
    }

    test('a Node address or pod CIDR', async () => {
      const file = join(dir, 'node.yaml');
      for (const [bad, message] of [
        ['status: {addresses: [{type: InternalIP, address: 192.168.0.300}]}', 'Node "n1": status.addresses[0].address: "192.168.0.300" is not an IP address'],
        ['spec: {podCIDR: 10.244.0.0/99}', 'Node "n1": spec.podCIDR: "10.244.0.0/99" is not a CIDR (bad prefix length)'],
      ] as const) {
        await writeFile(file, `${node}${bad}\n`);
        const r = wirelane('services', '--from', file, '--node', 'n1');
        assert.equal(r.code, 1);
        assert.equal(r.stderr, `wirelane: ${file}: document 1 (Node "n1"): ${message}\n`);
      }
    });
  });
});
