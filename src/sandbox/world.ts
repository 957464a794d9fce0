// The multi-location world of the demo and the integration tests that need more than one bridge:
// three sites on an internet whose links are narrower (MTU 1,380) than their LANs, dual-stack
// throughout (IPv6 ULA).
// - east: two LANs (subnets) behind one router that masquerades everything: reachable only by
//   the connections its nodes open (NAT, no port forward);
// - west: one LAN behind a router whose LAN also holds a public prefix: a node with a public
//   address next to its private one is reachable from anywhere;
// - home: a laptop's LAN behind its own masquerading router (a Peer out in the world).
import type { InternetSpec } from './internet-plan.js';

export const WORLD_INTERNET: InternetSpec = {
  cidr: '198.51.100.0/24',
  cidr6: 'fd00:100::/64',
  mtu: 1380,
  routers: [
    {
      name: 'east',
      internetAddress: '198.51.100.2/24',
      internetAddress6: 'fd00:100::2/64',
      lans: [
        { cidr: '10.1.1.0/24', cidr6: 'fd01:1::/64' },
        { cidr: '10.1.2.0/24', cidr6: 'fd01:2::/64' },
      ],
    },
    {
      name: 'west',
      internetAddress: '198.51.100.3/24',
      internetAddress6: 'fd00:100::3/64',
      lans: [{ cidr: '10.2.1.0/24', cidr6: 'fd02:1::/64', publicCidr: '203.0.113.0/28' }],
    },
    {
      name: 'home',
      internetAddress: '198.51.100.4/24',
      internetAddress6: 'fd00:100::4/64',
      lans: [{ cidr: '192.168.1.0/24', cidr6: 'fd03:1::/64' }],
    },
  ],
};

/** Host addresses in the world, by site and LAN: `host(n)` is the n-th address of the LAN. */
export const WORLD_LANS = {
  east1: { v4: (n: number) => `10.1.1.${n}/24`, v6: (n: number) => `fd01:1::${n}/64` },
  east2: { v4: (n: number) => `10.1.2.${n}/24`, v6: (n: number) => `fd01:2::${n}/64` },
  west: { v4: (n: number) => `10.2.1.${n}/24`, v6: (n: number) => `fd02:1::${n}/64`, public: (n: number) => `203.0.113.${n}/28` },
  home: { v4: (n: number) => `192.168.1.${n}/24`, v6: (n: number) => `fd03:1::${n}/64` },
} as const;

/** How often nodes behind NAT send keepalives (the wirelane.io/persistent-keepalive annotation). */
export const NAT_KEEPALIVE_SECONDS = 5;
