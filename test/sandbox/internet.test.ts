// The routed world on the kernel: LANs behind routers, NAT that only answers, a public prefix
// reachable from anywhere, the internet's narrower MTU, IPv6 throughout; and nothing left behind.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { listNetns } from '../../src/host/netns.js';
import { withSandbox, type Sandbox, type SandboxSpec } from '../../src/sandbox/index.js';
import { echoRequests, startEchoServer } from '../../src/sandbox/echo/index.js';
import { WORLD_INTERNET, WORLD_LANS } from '../../src/sandbox/world.js';
import { capabilitySkip } from '../support/capability.js';
import { until } from '../support/wait.js';

const skip = await capabilitySkip('sandbox tests');

const WORLD: SandboxSpec = {
  management: true,
  internet: WORLD_INTERNET,
  nodes: [
    { name: 'a', underlayAddress: WORLD_LANS.east1.v4(11), underlayAddress6: WORLD_LANS.east1.v6(11), podCIDRs: ['10.244.0.0/24'], pods: 1 },
    { name: 'b', underlayAddress: WORLD_LANS.east2.v4(11), underlayAddress6: WORLD_LANS.east2.v6(11), podCIDRs: ['10.244.1.0/24'] },
    { name: 'c', underlayAddress: WORLD_LANS.west.v4(11), underlayAddress6: WORLD_LANS.west.v6(11), publicAddress: WORLD_LANS.west.public(11), podCIDRs: ['10.244.2.0/24'] },
  ],
  outside: [{ name: 'laptop', underlayAddress: WORLD_LANS.home.v4(10), underlayAddress6: WORLD_LANS.home.v6(10) }],
};

/** One echo request with the don't-fragment bit and `payload` bytes. */
async function pingDf(sb: Sandbox, from: string, to: string, payload: number): Promise<boolean> {
  const r = await sb.exec(from, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', String(payload), to], { allowFailure: true });
  return r.exitCode === 0;
}

/** The address a TCP connection from `client` arrives from, as an echo server in `server` saw it. */
async function sourceSeenBy(sb: Sandbox, server: string, serverIp: string, client: string): Promise<string | undefined> {
  const echo = startEchoServer(sb, server, 'seen', { tcp: 7000 });
  try {
    for (let i = 0; i < 100; i++) {
      const [answer] = await echoRequests(sb, client, 'tcp', serverIp, 7000);
      if (answer !== undefined && !answer.startsWith('ERROR')) return answer.split(' ')[1]?.replace(/:\d+$/, '');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return undefined;
  } finally {
    await sb.stop(echo);
  }
}

describe('a sandbox with an internet', { skip }, () => {
  test('NAT only answers, a public address answers anyone, the internet is narrower, IPv6 crosses', async () => {
    let namespaces: readonly string[] = [];
    await withSandbox(WORLD, async (sb) => {
      namespaces = sb.namespaces;
      const [a, b, c] = [sb.node('a'), sb.node('b'), sb.node('c')];
      const laptop = sb.outside[0]!;
      // Within a location, its subnets route to each other through the router, unmasqueraded.
      assert.ok(await sb.reaches(a, b.underlayIP), 'a reaches b across the subnets of east');
      assert.equal(await sourceSeenBy(sb, b.netns, b.underlayIP, a.netns), a.underlayIP, 'b sees a as it is');
      // East is behind NAT: it reaches the world, the world sees its router, and cannot reach in.
      assert.ok(await sb.reaches(a, c.publicIP!), 'a reaches c at its public address');
      assert.equal(await sourceSeenBy(sb, c.netns, c.publicIP!, a.netns), sb.router('east').internetIP, 'c sees a as its router');
      assert.equal(await sb.reaches(c, a.underlayIP, undefined, 1000), false, 'c cannot reach into east');
      assert.equal(await sb.reaches(laptop, a.underlayIP, undefined, 1000), false, 'the laptop cannot reach into east');
      // The public address is reachable from anywhere, and answers from itself.
      assert.ok(await sb.reaches(laptop, c.publicIP!), 'the laptop reaches c at its public address');
      assert.equal(await sourceSeenBy(sb, c.netns, c.publicIP!, laptop.netns), sb.router('home').internetIP);
      // The internet's MTU: 1,380 bytes of IPv4 get through unfragmented, one more does not.
      assert.equal(sb.internetMtu, 1380);
      assert.ok(await pingDf(sb, a.netns, c.publicIP!, 1380 - 28), 'a full-size packet crosses');
      assert.equal(await pingDf(sb, a.netns, c.publicIP!, 1380 - 28 + 1), false, 'one byte more does not (and the router says so)');
      assert.ok(await pingDf(sb, a.netns, b.underlayIP, 1500 - 28), 'within a location, the LAN MTU holds');
      // IPv6 (ULA): out of east through NAT66, and between the subnets of a location.
      // (A ping: the router's own firewall refuses unasked-for TCP and UDP, as a home router does.)
      assert.ok(await pingDf(sb, a.netns, 'fd00:100::3', 56), "a reaches west's router over IPv6");
      assert.ok(await sb.reaches(a, b.underlayIPv6!), 'a reaches b over IPv6');
      assert.equal(await sb.reaches(c, a.underlayIPv6!, undefined, 1000), false, 'nor can c reach into east over IPv6');
    });
    const left = (await listNetns()).filter((ns) => namespaces.includes(ns));
    assert.deepEqual(left, [], 'destroy removes every namespace, routers and internet included');
  });

  test("a router drops the UDP to one host's port, both families, until restored; TCP and other ports pass", async () => {
    await withSandbox(WORLD, async (sb) => {
      const [a, b] = [sb.node('a'), sb.node('b')];
      // b's requests cross east's router to a, on the other subnet.
      startEchoServer(sb, a, 'a', { tcp: 7000, udp: 7000 });
      startEchoServer(sb, a, 'a', { udp: 7001 });
      const answers = async (protocol: 'tcp' | 'udp', host: string, port: number) => {
        const [line] = await echoRequests(sb, b, protocol, host, port, { timeoutMs: 1000 });
        return line !== undefined && !line.startsWith('ERROR');
      };
      await until("a's echo server to answer", () => answers('udp', a.underlayIP, 7000), 10_000, 100);
      await sb.dropUdp(a, 7000);
      assert.equal(await answers('udp', a.underlayIP, 7000), false, 'UDP to the port is dropped');
      assert.equal(await answers('udp', a.underlayIPv6!, 7000), false, 'over IPv6 too');
      assert.ok(await answers('udp', a.underlayIP, 7001), 'another port passes');
      assert.ok(await answers('tcp', a.underlayIP, 7000), 'TCP to the port passes');
      await sb.dropUdp(a, 7000); // idempotent: one restore undoes it
      await sb.restoreUdp(a, 7000);
      assert.ok(await answers('udp', a.underlayIP, 7000), 'restored: UDP passes again');
      assert.ok(await answers('udp', a.underlayIPv6!, 7000), 'over IPv6 too');
    });
  });
});
