// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Fast-path forwarding of pod traffic on tc ingress, past netfilter and the stack's forwarding:
//
//   fp_pod  the host side of a pod's veth: frames the pod sends.
//     - to a pod of this node whose MAC the pod addressed itself (same subnet, the bridge's job):
//       bpf_redirect_peer to that pod's veth, straight into its namespace;
//     - routed (to the gateway's MAC): bpf_fib_lookup decides, as the stack would (policy rules
//       included): the pod bridge -> the pod by the neighbour's MAC (bpf_redirect_peer); the
//       underlay -> bpf_redirect_neigh; the WireGuard device -> bpf_redirect (the kernel strips
//       the Ethernet header for a device without one).
//   fp_l2   an underlay interface: packets of other nodes, to pods here or on through WireGuard
//           (a leader forwards its location's traffic to other locations).
//   fp_l3   the WireGuard device (no link-layer header): to pods here (an Ethernet header is put
//           in front first), or on to the underlay (a leader to its location's members).
//
// Only what is certain is forwarded; everything else goes on unchanged (TC_ACT_UNSPEC: the next
// program on the hook, then the stack, as TC_ACT_OK would, without cutting a tcx chain short):
// ARP and neighbour discovery (not IP), frames the stack would not route (see fast_forward), IPv4
// options and fragments, IPv6 extension headers, protocols other than TCP and UDP (ICMP errors
// refer to flows netfilter may have translated), destinations outside the cluster's pod CIDRs
// (traffic to the host, to services, to the world, which the mesh masquerades), sources of fp_pod
// outside this node's pod CIDRs, a TTL about to end, an unresolved neighbour, routes through other
// interfaces.
//
// Service translation is never bypassed. Packets to a service address are not candidates (not a
// pod CIDR). Replies are: a backend's reply to a client pod is pod to pod, and when netfilter
// translated the request (iptables or userspace service mode, hostPort's portmap rules) only
// conntrack can translate the reply back. So every candidate is looked up in conntrack
// (bpf_skb_ct_lookup) and a flow netfilter NATs (IPS_NAT_MASK) goes to the stack. The eBPF service
// path translates at connect() (no NAT in conntrack), and its tc NodePort programs see our
// redirects at the egress hook of the device they leave by.
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "wirelane_fastpath.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define AF_INET 2
#define AF_INET6 10
#define PACKET_HOST 0
#define PACKET_BROADCAST 1
#define PACKET_MULTICAST 2
#define BPF_F_CURRENT_NETNS (-1)

struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts,
				  u32 opts__sz) __ksym;
void bpf_ct_release(struct nf_conn *ct) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct wl_fp_cidr_key);
	__type(value, struct wl_fp_cidr_value);
	__uint(max_entries, WL_FP_CIDRS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} wl_fp_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct wl_fp_dev_value);
	__uint(max_entries, WL_FP_DEVS_MAX);
} wl_fp_devs SEC(".maps");

// LRU: a pod that sprays source MACs ages its own entries out instead of filling the table for good
// (a port whose entry is gone goes to the stack until its next packet relearns it).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct wl_fp_port_key);
	__type(value, struct wl_fp_port_value);
	__uint(max_entries, WL_FP_PORTS_MAX);
} wl_fp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, WL_FP_STAT_SLOTS);
} wl_fp_stats SEC(".maps");

enum from { FROM_POD, FROM_UNDERLAY, FROM_WIREGUARD };

struct packet {
	__u32 l3_off;
	__u8 family; // 4 or 6
	__u8 protocol;
	__u8 ttl;
	__u8 dmac[6];
	__u8 smac[6];
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
};

static __always_inline void count(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&wl_fp_stats, &slot);
	if (value)
		*value += 1;
}

// -1: not a candidate (see the head of the file).
static __always_inline int parse(struct __sk_buff *skb, __u32 l3_off, struct packet *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->l3_off = l3_off;
	__u16 proto = bpf_ntohs(skb->protocol);
	if (l3_off) {
		struct ethhdr eth;
		if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
			return -1;
		__builtin_memcpy(p->dmac, eth.h_dest, 6);
		__builtin_memcpy(p->smac, eth.h_source, 6);
		proto = bpf_ntohs(eth.h_proto);
	}
	__u32 l4_off;
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
			return -1;
		if (ip.ihl != 5 || (bpf_ntohs(ip.frag_off) & (IP_MF | IP_OFFSET)))
			return -1;
		p->family = 4;
		p->protocol = ip.protocol;
		p->ttl = ip.ttl;
		__builtin_memcpy(p->saddr, &ip.saddr, 4);
		__builtin_memcpy(p->daddr, &ip.daddr, 4);
		l4_off = l3_off + sizeof(ip);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, l3_off, &ip6, sizeof(ip6)) < 0)
			return -1;
		p->family = 6;
		p->protocol = ip6.nexthdr;
		p->ttl = ip6.hop_limit;
		__builtin_memcpy(p->saddr, &ip6.saddr, 16);
		__builtin_memcpy(p->daddr, &ip6.daddr, 16);
		l4_off = l3_off + sizeof(ip6);
	} else {
		return -1;
	}
	if (p->protocol != IPPROTO_TCP && p->protocol != IPPROTO_UDP)
		return -1;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, l4_off, ports, sizeof(ports)) < 0)
		return -1;
	p->sport = ports[0];
	p->dport = ports[1];
	return 0;
}

static __always_inline struct wl_fp_cidr_value *cidr_of(__u8 family, const __u8 *addr)
{
	struct wl_fp_cidr_key key = {};
	key.prefixlen = WL_FP_CIDR_FAMILY_BITS + (family == 4 ? 32 : 128);
	key.family = family;
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&wl_fp_cidrs, &key);
}

// Whether netfilter translates this flow (its conntrack entry, either direction, has NAT), or
// whether that cannot be told: both go to the stack.
static __always_inline bool netfilter_nat(struct __sk_buff *skb, const struct packet *p)
{
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = {};
	__u32 size;
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = p->protocol;
	if (p->family == 4) {
		__builtin_memcpy(&tuple.ipv4.saddr, p->saddr, 4);
		__builtin_memcpy(&tuple.ipv4.daddr, p->daddr, 4);
		tuple.ipv4.sport = p->sport;
		tuple.ipv4.dport = p->dport;
		size = sizeof(tuple.ipv4);
	} else {
		__builtin_memcpy(tuple.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(tuple.ipv6.daddr, p->daddr, 16);
		tuple.ipv6.sport = p->sport;
		tuple.ipv6.dport = p->dport;
		size = sizeof(tuple.ipv6);
	}
	struct nf_conn *ct = bpf_skb_ct_lookup(skb, &tuple, size, &opts, sizeof(opts));
	// No entry (-ENOENT) is no translation; any other error (e.g. an opts size this kernel does
	// not take) is not knowing: the stack decides, as for a translated flow.
	if (!ct)
		return opts.error != -2 /* ENOENT */;
	bool nat = (ct->status & IPS_NAT_MASK) != 0;
	bpf_ct_release(ct);
	return nat;
}

// As the stack does when it forwards; -1 when the TTL ends here (the stack sends the ICMP error).
static __always_inline int decrement_ttl(struct __sk_buff *skb, const struct packet *p)
{
	if (p->ttl <= 1)
		return -1;
	__u8 ttl = p->ttl - 1;
	if (p->family == 6)
		return bpf_skb_store_bytes(skb, p->l3_off + __builtin_offsetof(struct ipv6hdr, hop_limit), &ttl, 1, 0);
	__be16 old = bpf_htons((__u16)p->ttl << 8 | p->protocol);
	__be16 new = bpf_htons((__u16)ttl << 8 | p->protocol);
	if (bpf_l3_csum_replace(skb, p->l3_off + __builtin_offsetof(struct iphdr, check), old, new, 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, p->l3_off + __builtin_offsetof(struct iphdr, ttl), &ttl, 1, 0);
}

// Puts an Ethernet header in front of a packet from a device without one (fp_l3).
static __always_inline int push_ethernet(struct __sk_buff *skb, const struct packet *p)
{
	if (p->l3_off)
		return 0;
	if (bpf_skb_change_head(skb, ETH_HLEN, 0) < 0)
		return -1;
	__be16 proto = bpf_htons(p->family == 4 ? ETH_P_IP : ETH_P_IPV6);
	return bpf_skb_store_bytes(skb, 12, &proto, 2, 0);
}

// Into the pod behind the veth `port` (its host side). The frame was addressed to the host side
// (or another MAC): the pod's stack must take it as its own.
static __always_inline int to_pod(struct __sk_buff *skb, __u32 port, __u32 stat)
{
	if (bpf_skb_change_type(skb, PACKET_HOST) < 0) {
		count(WL_FP_STAT_PASS_ERROR);
		return TC_ACT_UNSPEC;
	}
	count(stat);
	return bpf_redirect_peer(port, 0);
}

static __always_inline void learn(__u32 ifindex, const struct packet *p)
{
	struct wl_fp_port_key key = {};
	__builtin_memcpy(key.mac, p->smac, 6);
	struct wl_fp_port_value *known = bpf_map_lookup_elem(&wl_fp_ports, &key);
	if (known && known->ifindex == ifindex)
		return;
	struct wl_fp_port_value value = {.ifindex = ifindex};
	bpf_map_update_elem(&wl_fp_ports, &key, &value, BPF_ANY);
}

static __always_inline int fast_forward(struct __sk_buff *skb, __u32 l3_off, enum from from)
{
	// Frames the stack would not route: on the underlay, any not addressed to this host (flooded by
	// a switch that has not learnt the MAC yet, or seen in promiscuous mode; the stack drops them);
	// from a pod, broadcast and multicast (a unicast frame is for the gateway or a pod of the bridge).
	__u32 pkt_type = skb->pkt_type;
	if (from == FROM_UNDERLAY && pkt_type != PACKET_HOST)
		return TC_ACT_UNSPEC;
	if (from == FROM_POD && (pkt_type == PACKET_BROADCAST || pkt_type == PACKET_MULTICAST))
		return TC_ACT_UNSPEC;
	struct packet p;
	if (parse(skb, l3_off, &p) < 0)
		return TC_ACT_UNSPEC;
	// Read once: clang would otherwise compute a ctx offset the verifier refuses to dereference.
	__u32 ifindex = skb->ifindex;
	__u32 ingress_ifindex = skb->ingress_ifindex;
	struct wl_fp_cidr_value *dst = cidr_of(p.family, p.daddr);
	if (!dst)
		return TC_ACT_UNSPEC;
	__u32 local_stat = from == FROM_POD ? WL_FP_STAT_SAME_NODE : from == FROM_UNDERLAY ? WL_FP_STAT_FROM_UNDERLAY : WL_FP_STAT_FROM_WIREGUARD;
	if (from == FROM_POD) {
		struct wl_fp_cidr_value *src = cidr_of(p.family, p.saddr);
		if (!src || !(src->flags & WL_FP_CIDR_LOCAL))
			return TC_ACT_UNSPEC;
		learn(ifindex, &p);
	}
	if (netfilter_nat(skb, &p)) {
		count(WL_FP_STAT_PASS_NAT);
		return TC_ACT_UNSPEC;
	}
	if (from == FROM_POD && (dst->flags & WL_FP_CIDR_LOCAL)) {
		// Same subnet: the pod resolved the other pod's MAC itself, as for the bridge.
		struct wl_fp_port_key key = {};
		__builtin_memcpy(key.mac, p.dmac, 6);
		struct wl_fp_port_value *port = bpf_map_lookup_elem(&wl_fp_ports, &key);
		if (port && port->ifindex != ifindex)
			return to_pod(skb, port->ifindex, WL_FP_STAT_SAME_NODE);
	}

	struct bpf_fib_lookup fib = {};
	fib.l4_protocol = p.protocol;
	fib.sport = p.sport;
	fib.dport = p.dport;
	// An input route from the interface the packet came in on (policy rules by iif apply). tot_len
	// 0: no MTU check; a GRO packet may be larger than the MTU and is segmented on the way out.
	fib.ifindex = ingress_ifindex;
	if (p.family == 4) {
		fib.family = AF_INET;
		__builtin_memcpy(&fib.ipv4_src, p.saddr, 4);
		__builtin_memcpy(&fib.ipv4_dst, p.daddr, 4);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, p.saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, p.daddr, 16);
	}
	long rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH) {
		count(WL_FP_STAT_PASS_ROUTE);
		return TC_ACT_UNSPEC;
	}
	__u32 out = fib.ifindex;
	struct wl_fp_dev_value *dev = bpf_map_lookup_elem(&wl_fp_devs, &out);
	if (!dev || out == ingress_ifindex) {
		count(WL_FP_STAT_PASS_ROUTE);
		return TC_ACT_UNSPEC;
	}
	if (dev->kind == WL_FP_DEV_BRIDGE) {
		struct wl_fp_port_key key = {};
		__builtin_memcpy(key.mac, fib.dmac, 6);
		struct wl_fp_port_value *port = rc == BPF_FIB_LKUP_RET_SUCCESS ? bpf_map_lookup_elem(&wl_fp_ports, &key) : NULL;
		if (!port) {
			count(WL_FP_STAT_PASS_NEIGH);
			return TC_ACT_UNSPEC;
		}
		__u32 ifindex = port->ifindex;
		if (decrement_ttl(skb, &p) < 0) {
			count(WL_FP_STAT_PASS_ROUTE);
			return TC_ACT_UNSPEC;
		}
		// From here on the packet is changed: a failure drops it rather than hand the stack a half-made one.
		if (push_ethernet(skb, &p) < 0 || bpf_skb_store_bytes(skb, 0, fib.dmac, 6, 0) < 0 || bpf_skb_store_bytes(skb, 6, fib.smac, 6, 0) < 0) {
			count(WL_FP_STAT_PASS_ERROR);
			return TC_ACT_SHOT;
		}
		return to_pod(skb, ifindex, local_stat);
	}
	if (dev->kind == WL_FP_DEV_WIREGUARD) {
		if (decrement_ttl(skb, &p) < 0) {
			count(WL_FP_STAT_PASS_ROUTE);
			return TC_ACT_UNSPEC;
		}
		count(WL_FP_STAT_TO_WIREGUARD);
		return bpf_redirect(out, 0);
	}
	if (dev->kind == WL_FP_DEV_UNDERLAY) {
		if (decrement_ttl(skb, &p) < 0) {
			count(WL_FP_STAT_PASS_ROUTE);
			return TC_ACT_UNSPEC;
		}
		// bpf_redirect_neigh takes the Ethernet header off and puts the neighbour's on.
		if (push_ethernet(skb, &p) < 0) {
			count(WL_FP_STAT_PASS_ERROR);
			return TC_ACT_SHOT;
		}
		struct bpf_redir_neigh nh = {};
		// After the lookup, family and ipv4_dst/ipv6_dst hold the next hop (the gateway, or the
		// destination), whose family may differ from the packet's: an IPv6 route via an IPv4 gateway.
		nh.nh_family = fib.family;
		if (fib.family == AF_INET)
			nh.ipv4_nh = fib.ipv4_dst;
		else
			__builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
		count(WL_FP_STAT_TO_UNDERLAY);
		return bpf_redirect_neigh(out, &nh, sizeof(nh), 0);
	}
	count(WL_FP_STAT_PASS_ROUTE);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int fp_pod(struct __sk_buff *skb)
{
	return fast_forward(skb, ETH_HLEN, FROM_POD);
}

SEC("tc")
int fp_l2(struct __sk_buff *skb)
{
	return fast_forward(skb, ETH_HLEN, FROM_UNDERLAY);
}

SEC("tc")
int fp_l3(struct __sk_buff *skb)
{
	return fast_forward(skb, 0, FROM_WIREGUARD);
}

char LICENSE[] SEC("license") = "GPL";
