// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// North-south load balancing on tc: NodePort, ExternalIP and LoadBalancer traffic that arrives on
// one of the node's interfaces from outside (the underlay, or a mesh interface) is translated to a
// backend here, per packet, with a conntrack/NAT map of our own (include/wirelane_nodeport.h).
// Traffic from this node's own sockets never gets here translated: the socket layer
// (sock_lb.bpf.c) has already turned the service into a backend at connect(). IPv4 and IPv6,
// TCP and UDP. The services, backends and node addresses come from the shared maps of
// include/wirelane_maps.h (written by the agent, only read here); flows and the affinity of outside
// clients are in this program's own maps (include/wirelane_nodeport.h).
//
// The packet walk (C = outside client, N = this node's address, F = the frontend the client
// addressed: N:nodePort, or an ExternalIP/LB IP:port; B = the backend; P = a masquerade port)
//
//   1. C -> F arrives at INGRESS. A conntrack FORWARD entry {C -> F} says where the flow goes; a
//      new flow looks F up in wl_services (scope external: the exact address first, then the
//      NodePort wildcard if the destination is in wl_node_addrs), checks loadBalancerSourceRanges,
//      picks a backend (ClientIP affinity by C's address, else a random slot), and writes the
//      FORWARD entry and the REPLY entry for the way back, unconfirmed (see "Floods" below).
//      a) B is on this node, or the service's externalTrafficPolicy is Local: DNAT only. The
//         client's address is kept. C -> B.
//      b) B is on another node and the policy is Cluster: DNAT and SNAT to N:P, where N is the
//         source address of the route to B (bpf_fib_lookup with BPF_FIB_LOOKUP_SRC, or the
//         agent's wl_np_snat) and P is probed from a hash of the tuple within snat_port_min..max
//         (keep that range out of net.ipv4.ip_local_port_range: the node's own connections must
//         not collide with it). N:P -> B, so B's node routes the reply back here.
//      A DNATed-only packet (a) goes on to the kernel (TC_ACT_OK), which routes it: netfilter's
//      conntrack then knows B's reply as the reply of C -> B, so no NAT rule of the node's own
//      (the mesh masquerades pod traffic leaving the cluster) rewrites it. A masqueraded packet (b)
//      is routed by bpf_fib_lookup and sent with bpf_redirect_neigh, past the kernel's input path:
//      with a source address of this node the kernel would drop it as a martian.
//   2. B's reply, case a: B -> C is routed by the kernel like any packet and leaves through an
//      interface towards C: at EGRESS the REPLY entry {B -> C} turns it into F -> C.
//   3. B's reply, case b: B -> N:P comes back to this node and arrives at INGRESS (from the
//      underlay, or the mesh interface: attach there too). The REPLY entry {B -> N:P}, looked up
//      only for destination ports in the masquerade range, turns it into F -> C, and it is routed
//      out like 1.
//   Hence programs on both directions of every interface clients and remote backends' replies use.
//
// The mesh interface (WireGuard: no link-layer header) gets the *_l3 programs, and its ingress one
// (np_ingress_mesh) also translates ClusterIPs: a Peer reaches services over WireGuard (Kilo's
// --service-cidr), and its packets meet no socket of this node. Their frontend is the internal
// scope's ClusterIP entry (as from a pod here), otherwise they go as 1-3. Masqueraded replies
// from another location come back on the mesh interface (3). A packet that arrived without a
// link-layer header gets one pushed before bpf_redirect_neigh, which only takes packets with one.
//
// Checksums are always updated incrementally with bpf_l3_csum_replace/bpf_l4_csum_replace
// (BPF_F_PSEUDO_HDR for the addresses in the L4 pseudo-header), never recomputed: the helpers know
// whether the L4 field holds a full checksum or only the pseudo-header sum of a CHECKSUM_PARTIAL
// packet (a veth from a local socket, TSO). UDP over IPv4 with no checksum (0) stays without one
// (BPF_F_MARK_MANGLED_0, which also writes a computed 0 as 0xffff).
//
// Flow lifetime: the LRU map only evicts when full, so entries carry a last-seen time; a TCP flow
// that saw a FIN or RST times out after ct_timeout_closing, others after ct_timeout_tcp/udp, and
// an unconfirmed one after ct_timeout_unconfirmed. An existing TCP flow keeps its backend until it
// ends (kube-proxy keeps conntrack for removed TCP endpoints too); a SYN on a closed, timed-out or
// stale entry picks anew. A UDP flow re-checks once a second that its backend is still in the
// service and moves when it is not (kube-proxy flushes UDP conntrack for removed endpoints).
// Timed-out REPLY entries free their masquerade port.
//
// Floods: state is made only for what can start a flow, and kept long only for flows the client
// proved real. A TCP packet other than a SYN creates nothing. A SYN (or a UDP datagram) creates the
// two entries in wl_np_pending, under ct_timeout_unconfirmed (as conntrack's SYN_SENT/SYN_RECV);
// they move to wl_np_ct, under the long timeouts, when the client's ACK acknowledges the backend's
// SYN-ACK (UDP: the client sends again after a reply). Spoofed sources never see the SYN-ACK, so a
// SYN flood only churns wl_np_pending and cannot evict confirmed flows; an ACK flood makes no state
// at all. A masquerade port held by an unconfirmed flow idle longer than snat_reclaim_age is taken
// over when all probed ports are held, so a flood cannot hold a backend's ports for long either.
// ClientIP affinity of outside clients is written at confirmation, so spoofed sources write none.
//
// A TCP packet without SYN of no known flow: to a NodePort (a node address) it is left to the
// node's stack (TC_ACT_UNSPEC), which answers like any closed port with a reset, so a client whose
// flow was lost fails at once instead of retransmitting for minutes, and a flow netfilter's
// conntrack still translates (one that began under the iptables mode) carries on. To an ExternalIP
// or LB IP it is dropped: those addresses are often not the node's own, and the node would route
// the packet on, back towards the load balancer (a spoofed flood then loops until its TTL ends).
//
// No endpoint: WL_SVC_NO_ENDPOINT_DROP drops. Otherwise (the service has no endpoint at all) a TCP
// SYN is answered with a RST built in place and sent back out of the interface it came in on (the
// client fails at once with ECONNREFUSED); other packets, and every UDP one, are dropped: an ICMP
// port unreachable would need a new packet around the old one, which tc cannot build reliably for
// CHECKSUM_PARTIAL packets.
//
// Not handled (passed untouched): IP fragments, IPv6 extension headers, IPv4 options on the reset
// path (dropped instead), SCTP, and ICMP errors about translated flows (not translated back).
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "wirelane_maps.h"
#include "wirelane_nodeport.h"
#include "wirelane_lb.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_HLEN 14
#define ETH_ALEN 6
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
// Not ours: the next program or filter on the hook sees the packet (tcx: TCX_NEXT), and after the
// last one it passes. TC_ACT_OK would end the chain for traffic that is none of our business.
#define TC_ACT_UNSPEC (-1)
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
#define NSEC_PER_SEC 1000000000ULL
// Masquerade ports tried per new flow before giving up (a full range is a sign to widen it).
// (A build may set it with -D: the upgrade tests build an older program that way.)
#ifndef SNAT_PROBES
#define SNAT_PROBES 32
#endif
// new_flow's "carry on with the rewrite" (no TC_ACT_* verdict is this).
#define NP_CONTINUE (-100)

// Load-time settings (src/dataplane/ebpf/nodeport.ts sets them before load).
const volatile __u16 snat_port_min = 61000;
const volatile __u16 snat_port_max = 65535;
const volatile __u32 ct_timeout_tcp = 21600;
const volatile __u32 ct_timeout_udp = 120;
const volatile __u32 ct_timeout_closing = 10;
const volatile __u32 ct_timeout_unconfirmed = 30;
const volatile __u32 snat_reclaim_age = 1;

// One packet's tuple and where its headers are.
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 family;
	__u8 tcp_flags;
	__u8 ttl; /* IPv4 TTL, IPv6 hop limit */
	__u32 l3_off;
	__u32 l4_off;
	__u32 l4_len; /* the L4 header and payload, from the IP header's length */
};

static __always_inline void count(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&wl_np_stats, &slot);
	if (value)
		*value += 1;
}

static __always_inline __u32 now_seconds(void)
{
	return bpf_ktime_get_ns() / NSEC_PER_SEC;
}

static __always_inline bool addr_zero(const __u8 *a)
{
	__u64 a0, a1;
	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	return (a0 | a1) == 0;
}

// Only TCP and UDP, unfragmented, and IPv6 without extension headers: anything else (-1) passes
// untouched.
static __always_inline int parse_flow(struct __sk_buff *skb, __u32 l3_off, struct flow *f)
{
	__builtin_memset(f, 0, sizeof(*f));
	f->l3_off = l3_off;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, l3_off, &ip, sizeof(ip)) < 0)
			return -1;
		__u32 ihl = ip.ihl * 4;
		__u32 total = bpf_ntohs(ip.tot_len);
		if (ip.version != 4 || ihl < sizeof(ip) || total < ihl || (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return -1;
		f->family = WL_FAMILY_IPV4;
		f->protocol = ip.protocol;
		f->ttl = ip.ttl;
		__builtin_memcpy(f->saddr, &ip.saddr, 4);
		__builtin_memcpy(f->daddr, &ip.daddr, 4);
		f->l4_off = l3_off + ihl;
		f->l4_len = total - ihl;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, l3_off, &ip6, sizeof(ip6)) < 0)
			return -1;
		if (ip6.version != 6)
			return -1;
		f->family = WL_FAMILY_IPV6;
		f->protocol = ip6.nexthdr;
		f->ttl = ip6.hop_limit;
		__builtin_memcpy(f->saddr, &ip6.saddr, 16);
		__builtin_memcpy(f->daddr, &ip6.daddr, 16);
		f->l4_off = l3_off + sizeof(ip6);
		f->l4_len = bpf_ntohs(ip6.payload_len);
	} else {
		return -1;
	}
	if (f->protocol != IPPROTO_TCP && f->protocol != IPPROTO_UDP)
		return -1;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, f->l4_off, ports, sizeof(ports)) < 0)
		return -1;
	f->sport = ports[0];
	f->dport = ports[1];
	if (f->protocol == IPPROTO_TCP && bpf_skb_load_bytes(skb, f->l4_off + 13, &f->tcp_flags, 1) < 0)
		return -1;
	return 0;
}

static __always_inline void ct_key_of(const struct flow *f, __u8 direction, struct wl_np_ct_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->saddr, f->saddr, 16);
	__builtin_memcpy(key->daddr, f->daddr, 16);
	key->sport = f->sport;
	key->dport = f->dport;
	key->protocol = f->protocol;
	key->family = f->family;
	key->direction = direction;
}

// The other direction's key: what this entry rewrites to, turned around.
static __always_inline void ct_other_key(const struct wl_np_ct_value *v, const struct wl_np_ct_key *self, struct wl_np_ct_key *other)
{
	__builtin_memset(other, 0, sizeof(*other));
	__builtin_memcpy(other->saddr, v->daddr, 16);
	__builtin_memcpy(other->daddr, v->saddr, 16);
	other->sport = v->dport;
	other->dport = v->sport;
	other->protocol = self->protocol;
	other->family = self->family;
	other->direction = self->direction == WL_NP_CT_FORWARD ? WL_NP_CT_REPLY : WL_NP_CT_FORWARD;
}

static __always_inline bool ct_expired(const struct wl_np_ct_value *v, __u8 protocol, __u32 now)
{
	__u32 timeout = (v->flags & WL_NP_CT_CLOSING) ? ct_timeout_closing : protocol == IPPROTO_TCP ? ct_timeout_tcp : ct_timeout_udp;
	return now - v->last_seen > timeout;
}

// The same for an entry of wl_np_pending.
static __always_inline bool pending_expired(const struct wl_np_ct_value *v, __u32 now)
{
	__u32 timeout = (v->flags & WL_NP_CT_CLOSING) ? ct_timeout_closing : ct_timeout_unconfirmed;
	return now - v->last_seen > timeout;
}

// Records that the flow is alive (at most one write a second) and whether it is closing, in both
// directions' entries of `map` (wl_np_ct, or wl_np_pending whose values start with the same
// struct): a masquerade port is free again only once its REPLY entry timed out, so packets towards
// the backend keep it alive too. `alive` false: only whether it is closing (a backend's packets do
// not keep an unconfirmed flow alive: it answers spoofed SYNs too, and retransmits its SYN-ACKs).
static __always_inline void ct_touch(void *map, struct wl_np_ct_value *v, const struct wl_np_ct_key *self, const struct flow *f, __u32 now, bool alive)
{
	bool closing = f->protocol == IPPROTO_TCP && (f->tcp_flags & (TCP_FIN | TCP_RST)) && !(v->flags & WL_NP_CT_CLOSING);
	bool stale = alive && v->last_seen != now;
	if (!closing && !stale)
		return;
	if (closing)
		v->flags |= WL_NP_CT_CLOSING;
	if (stale)
		v->last_seen = now;
	if (!closing && self->direction == WL_NP_CT_REPLY)
		return;
	struct wl_np_ct_key other;
	ct_other_key(v, self, &other);
	struct wl_np_ct_value *o = bpf_map_lookup_elem(map, &other);
	if (!o) {
		count(WL_NP_STAT_EVICTED);
		return;
	}
	if (closing)
		o->flags |= WL_NP_CT_CLOSING;
	if (stale && self->direction == WL_NP_CT_FORWARD)
		o->last_seen = now;
}

// Deletes a flow's entry `self` of `map` and the other direction's (`v` is self's value).
static __always_inline void ct_forget(void *map, const struct wl_np_ct_value *v, const struct wl_np_ct_key *self)
{
	struct wl_np_ct_key other;
	ct_other_key(v, self, &other);
	bpf_map_delete_elem(map, &other);
	bpf_map_delete_elem(map, self);
}

// The key of the frontend the packet addresses (its conntrack flags say which kind): the
// external scope's, or a ClusterIP's in the internal scope.
static __always_inline void service_key_of(const struct flow *f, __u8 ct_flags, struct wl_service_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	if (!(ct_flags & WL_NP_CT_NODEPORT))
		__builtin_memcpy(key->addr, f->daddr, 16);
	key->port = f->dport;
	key->protocol = f->protocol;
	key->family = f->family;
	key->scope = (ct_flags & WL_NP_CT_CLUSTER_IP) ? WL_SCOPE_INTERNAL : WL_SCOPE_EXTERNAL;
}

// Whether a FORWARD entry still decides where this packet goes (see "Flow lifetime" above).
static __always_inline bool forward_entry_holds(const struct wl_np_ct_value *e, const struct flow *f, __u32 now)
{
	struct wl_service_key key;
	if (f->protocol == IPPROTO_TCP) {
		if ((f->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
			return true;
		if ((e->flags & WL_NP_CT_CLOSING) || ct_expired(e, f->protocol, now))
			return false;
	} else if (e->last_seen == now) {
		return true;
	}
	service_key_of(f, e->flags, &key);
	struct wl_service_value *svc = bpf_map_lookup_elem(&wl_services, &key);
	return svc && wl_remembered_backend_valid(svc->first_slot, svc->count, e->backend_id, e->slot);
}

// The service entry for the packet's destination: an ExternalIP or LB IP exactly, a ClusterIP
// (only with `cluster_ips`, on the mesh interface), or a NodePort on one of the node's NodePort
// addresses. NULL: not a service seen from outside.
static __always_inline struct wl_service_value *lookup_frontend(const struct flow *f, bool cluster_ips, struct wl_service_key *key, __u8 *ct_flags)
{
	service_key_of(f, 0, key);
	struct wl_service_value *svc = bpf_map_lookup_elem(&wl_services, key);
	if (svc) {
		*ct_flags = 0;
		return svc;
	}
	if (cluster_ips) {
		service_key_of(f, WL_NP_CT_CLUSTER_IP, key);
		svc = bpf_map_lookup_elem(&wl_services, key);
		if (svc && (svc->flags & WL_SVC_CLUSTER_IP)) {
			*ct_flags = WL_NP_CT_CLUSTER_IP;
			return svc;
		}
	}
	struct wl_node_addr_key node = {};
	__builtin_memcpy(node.addr, f->daddr, 16);
	node.family = f->family;
	if (!bpf_map_lookup_elem(&wl_node_addrs, &node))
		return NULL;
	service_key_of(f, WL_NP_CT_NODEPORT, key);
	svc = bpf_map_lookup_elem(&wl_services, key);
	if (!svc || !(svc->flags & WL_SVC_NODEPORT))
		return NULL;
	*ct_flags = WL_NP_CT_NODEPORT;
	return svc;
}

static __always_inline bool source_allowed(const struct flow *f)
{
	struct wl_np_range_key key = {};
	key.prefixlen = WL_NP_RANGE_FRONTEND_BITS + (f->family == WL_FAMILY_IPV4 ? 32 : 128);
	__builtin_memcpy(key.addr, f->daddr, 16);
	key.port = f->dport;
	key.protocol = f->protocol;
	key.family = f->family;
	__builtin_memcpy(key.source, f->saddr, 16);
	return bpf_map_lookup_elem(&wl_np_ranges, &key) != NULL;
}

static __always_inline void fib_params_of(struct __sk_buff *skb, __u8 family, __u8 protocol, const __u8 *saddr, const __u8 *daddr,
					  struct bpf_fib_lookup *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->l4_protocol = protocol;
	// As an input route from the interface the packet came in on. tot_len 0: no MTU check here,
	// a GRO packet may be larger than the MTU and is segmented on the way out.
	p->ifindex = skb->ingress_ifindex;
	if (family == WL_FAMILY_IPV4) {
		p->family = AF_INET;
		__builtin_memcpy(&p->ipv4_src, saddr, 4);
		__builtin_memcpy(&p->ipv4_dst, daddr, 4);
	} else {
		p->family = AF_INET6;
		__builtin_memcpy(p->ipv6_src, saddr, 16);
		__builtin_memcpy(p->ipv6_dst, daddr, 16);
	}
}

// The node address to masquerade to towards `backend`: the route's source address where the
// kernel tells it (6.8+), else the agent's choice in wl_np_snat. -1 when there is none.
static __always_inline int snat_source(struct __sk_buff *skb, const struct flow *f, const __u8 *backend, __u8 *src)
{
	struct bpf_fib_lookup p;
	__u8 none[16] = {};
	fib_params_of(skb, f->family, f->protocol, none, backend, &p);
	long rc = bpf_fib_lookup(skb, &p, sizeof(p), BPF_FIB_LOOKUP_SRC);
	__builtin_memset(src, 0, 16);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (f->family == WL_FAMILY_IPV4)
			__builtin_memcpy(src, &p.ipv4_src, 4);
		else
			__builtin_memcpy(src, p.ipv6_src, 16);
		if (!addr_zero(src))
			return 0;
	}
	__u32 index = f->family == WL_FAMILY_IPV4 ? 0 : 1;
	struct wl_np_snat_value *configured = bpf_map_lookup_elem(&wl_np_snat, &index);
	if (!configured || addr_zero(configured->addr))
		return -1;
	__builtin_memcpy(src, configured->addr, 16);
	return 0;
}

// Where a new flow starts probing for a masquerade port. Not the backend: a flow that moves to
// another backend keeps its port when it is free there.
static __always_inline __u32 tuple_hash(const struct flow *f)
{
	__u32 h = 0x9e3779b1;
	__u32 words[8];
	__builtin_memcpy(words, f->saddr, 16);
	__builtin_memcpy(words + 4, f->daddr, 16);
	for (int i = 0; i < 8; i++) {
		h ^= words[i];
		h *= 0x85ebca6b;
		h ^= h >> 13;
	}
	h ^= ((__u32)f->sport << 16) | f->dport;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

// The address fields of the IP headers.
static __always_inline __u32 saddr_offset(__u8 family)
{
	return family == WL_FAMILY_IPV4 ? __builtin_offsetof(struct iphdr, saddr) : __builtin_offsetof(struct ipv6hdr, saddr);
}

static __always_inline __u32 daddr_offset(__u8 family)
{
	return family == WL_FAMILY_IPV4 ? __builtin_offsetof(struct iphdr, daddr) : __builtin_offsetof(struct ipv6hdr, daddr);
}

static __always_inline int rewrite_address(struct __sk_buff *skb, const struct flow *f, __u32 field, __u32 csum_off, __u64 l4_flags,
					   const __u8 *from, const __u8 *to)
{
	if (wl_addr_equal(from, to))
		return 0;
	if (f->family == WL_FAMILY_IPV4) {
		__be32 old, new;
		__builtin_memcpy(&old, from, 4);
		__builtin_memcpy(&new, to, 4);
		if (bpf_l4_csum_replace(skb, csum_off, old, new, BPF_F_PSEUDO_HDR | l4_flags | sizeof(new)) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, f->l3_off + __builtin_offsetof(struct iphdr, check), old, new, sizeof(new)) < 0)
			return -1;
		return bpf_skb_store_bytes(skb, f->l3_off + field, &new, sizeof(new), 0);
	}
	__be32 old[4], new[4];
	__builtin_memcpy(old, from, 16);
	__builtin_memcpy(new, to, 16);
	__s64 diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);
	if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | l4_flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, f->l3_off + field, new, sizeof(new), 0);
}

static __always_inline int rewrite_port(struct __sk_buff *skb, __u32 offset, __u32 csum_off, __u64 l4_flags, __be16 from, __be16 to)
{
	if (from == to)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, from, to, l4_flags | sizeof(to)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, offset, &to, sizeof(to), 0);
}

// Rewrites the packet's tuple `f` into `to`'s.
static __always_inline int rewrite(struct __sk_buff *skb, const struct flow *f, const struct wl_np_ct_value *to)
{
	__u32 csum_off = f->l4_off + (f->protocol == IPPROTO_TCP ? __builtin_offsetof(struct tcphdr, check) : __builtin_offsetof(struct udphdr, check));
	__u64 l4_flags = f->protocol == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	if (rewrite_address(skb, f, saddr_offset(f->family), csum_off, l4_flags, f->saddr, to->saddr) < 0)
		return -1;
	if (rewrite_address(skb, f, daddr_offset(f->family), csum_off, l4_flags, f->daddr, to->daddr) < 0)
		return -1;
	if (rewrite_port(skb, f->l4_off, csum_off, l4_flags, f->sport, to->sport) < 0)
		return -1;
	return rewrite_port(skb, f->l4_off + sizeof(__be16), csum_off, l4_flags, f->dport, to->dport);
}

// What a router does to a packet it forwards; -1 when the packet has no hop left.
static __always_inline int decrement_ttl(struct __sk_buff *skb, const struct flow *f)
{
	if (f->ttl <= 1)
		return -1;
	__u8 ttl = f->ttl - 1;
	if (f->family == WL_FAMILY_IPV6)
		return bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct ipv6hdr, hop_limit), &ttl, 1, 0);
	// The checksum covers TTL and protocol as one 16-bit word.
	__be16 old = bpf_htons((__u16)f->ttl << 8 | f->protocol);
	__be16 new = bpf_htons((__u16)ttl << 8 | f->protocol);
	if (bpf_l3_csum_replace(skb, f->l3_off + __builtin_offsetof(struct iphdr, check), old, new, sizeof(new)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct iphdr, ttl), &ttl, 1, 0);
}

// Sends a rewritten packet (whose tuple is now `to`'s) on towards its new destination.
static __always_inline int forward(struct __sk_buff *skb, const struct flow *f, const struct wl_np_ct_value *to)
{
	struct bpf_fib_lookup p;
	fib_params_of(skb, f->family, f->protocol, to->saddr, to->daddr, &p);
	p.sport = to->sport;
	p.dport = to->dport;
	long rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		if (decrement_ttl(skb, f) < 0) {
			count(WL_NP_STAT_DROP_NO_ROUTE);
			return TC_ACT_SHOT;
		}
		// bpf_redirect_neigh strips a link-layer header and drops a packet without one: an empty
		// one goes in front (the neighbour code writes the real one, if the device has any).
		if (f->l3_off == 0) {
			__be16 proto = f->family == WL_FAMILY_IPV4 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
			if (bpf_skb_change_head(skb, ETH_HLEN, 0) < 0 || bpf_skb_store_bytes(skb, 2 * ETH_ALEN, &proto, sizeof(proto), 0) < 0) {
				count(WL_NP_STAT_DROP_ERROR);
				return TC_ACT_SHOT;
			}
		}
		// After the lookup, ipv4_dst/ipv6_dst hold the next hop (the gateway, or the destination).
		struct bpf_redir_neigh nh = {};
		nh.nh_family = p.family;
		if (f->family == WL_FAMILY_IPV4)
			nh.ipv4_nh = p.ipv4_dst;
		else
			__builtin_memcpy(nh.ipv6_nh, p.ipv6_dst, 16);
		return bpf_redirect_neigh(p.ifindex, &nh, sizeof(nh), 0);
	}
	// A masqueraded source is one of ours: the kernel's input path would drop it as a martian.
	if (to->flags & WL_NP_CT_SNAT) {
		count(WL_NP_STAT_DROP_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	count(WL_NP_STAT_TO_KERNEL);
	return TC_ACT_OK;
}

// Turns a TCP SYN into the RST/ACK a closed port answers with (RFC 9293 3.10.7.1: SEQ 0, ACK
// SEG.SEQ+1), in place, every change folded into the checksums incrementally. -1: not possible
// (not a bare SYN, data or IPv4 options), drop instead.
static __always_inline int reset_syn(struct __sk_buff *skb, const struct flow *f)
{
	struct tcphdr th;
	if ((f->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) != TCP_SYN)
		return -1;
	if (f->family == WL_FAMILY_IPV4 && f->l4_off != f->l3_off + sizeof(struct iphdr))
		return -1;
	if (bpf_skb_load_bytes(skb, f->l4_off, &th, sizeof(th)) < 0)
		return -1;
	__u32 hlen = th.doff * 4;
	if (hlen < sizeof(th) || hlen > 60 || f->l4_len != hlen)
		return -1;
	__u32 csum_off = f->l4_off + __builtin_offsetof(struct tcphdr, check);

	// Words 1 and 2: sequence and acknowledgement numbers; word 3: offset, flags and window.
	__be32 words[3];
	if (bpf_skb_load_bytes(skb, f->l4_off + 4, words, sizeof(words)) < 0)
		return -1;
	__be32 reset[3] = { 0, bpf_htonl(bpf_ntohl(th.seq) + 1), bpf_htonl(5 << 28 | (TCP_RST | TCP_ACK) << 16) };
	for (int i = 0; i < 3; i++)
		if (bpf_l4_csum_replace(skb, csum_off, words[i], reset[i], sizeof(__be32)) < 0)
			return -1;
	__be16 urgent = 0;
	if (bpf_l4_csum_replace(skb, csum_off, th.urg_ptr, urgent, sizeof(urgent)) < 0)
		return -1;
	// The options go: take them out of the sum, then off the packet.
	for (__u32 off = sizeof(th); off < 60; off += 4) {
		if (off >= hlen)
			break;
		__be32 option;
		if (bpf_skb_load_bytes(skb, f->l4_off + off, &option, sizeof(option)) < 0)
			return -1;
		if (bpf_l4_csum_replace(skb, csum_off, option, 0, sizeof(option)) < 0)
			return -1;
	}
	if (bpf_l4_csum_replace(skb, csum_off, bpf_htons(hlen), bpf_htons(sizeof(th)), BPF_F_PSEUDO_HDR | sizeof(__be16)) < 0)
		return -1;
	if (bpf_skb_store_bytes(skb, f->l4_off + 4, reset, sizeof(reset), 0) < 0 ||
	    bpf_skb_store_bytes(skb, f->l4_off + __builtin_offsetof(struct tcphdr, urg_ptr), &urgent, sizeof(urgent), 0) < 0)
		return -1;

	// Turned around: swapped addresses and ports leave every checksum as it was.
	__be16 ports[2] = { f->dport, f->sport };
	if (bpf_skb_store_bytes(skb, f->l4_off, ports, sizeof(ports), 0) < 0)
		return -1;
	__u32 addr_len = f->family == WL_FAMILY_IPV4 ? 4 : 16;
	if (bpf_skb_store_bytes(skb, f->l3_off + saddr_offset(f->family), f->daddr, addr_len, 0) < 0 ||
	    bpf_skb_store_bytes(skb, f->l3_off + daddr_offset(f->family), f->saddr, addr_len, 0) < 0)
		return -1;
	__u8 ttl = 64;
	if (f->family == WL_FAMILY_IPV4) {
		__be16 old_len = bpf_htons(sizeof(struct iphdr) + hlen), new_len = bpf_htons(sizeof(struct iphdr) + sizeof(th));
		__be16 old_ttl = bpf_htons((__u16)f->ttl << 8 | IPPROTO_TCP), new_ttl = bpf_htons((__u16)ttl << 8 | IPPROTO_TCP);
		__u32 check = f->l3_off + __builtin_offsetof(struct iphdr, check);
		if (bpf_l3_csum_replace(skb, check, old_len, new_len, sizeof(new_len)) < 0 ||
		    bpf_l3_csum_replace(skb, check, old_ttl, new_ttl, sizeof(new_ttl)) < 0 ||
		    bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct iphdr, tot_len), &new_len, sizeof(new_len), 0) < 0 ||
		    bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct iphdr, ttl), &ttl, 1, 0) < 0)
			return -1;
	} else {
		__be16 new_len = bpf_htons(sizeof(th));
		if (bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct ipv6hdr, payload_len), &new_len, sizeof(new_len), 0) < 0 ||
		    bpf_skb_store_bytes(skb, f->l3_off + __builtin_offsetof(struct ipv6hdr, hop_limit), &ttl, 1, 0) < 0)
			return -1;
	}
	if (bpf_skb_change_tail(skb, f->l4_off + sizeof(th), 0) < 0)
		return -1;
	if (f->l3_off == ETH_HLEN) {
		__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];
		if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0)
			return -1;
		__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
		__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
		if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0)
			return -1;
	}
	return 0;
}

static __always_inline int no_endpoint(struct __sk_buff *skb, const struct flow *f, __u16 svc_flags)
{
	if (!(svc_flags & WL_SVC_NO_ENDPOINT_DROP) && f->protocol == IPPROTO_TCP && reset_syn(skb, f) == 0) {
		count(WL_NP_STAT_REJECT);
		return bpf_redirect(skb->ifindex, 0);
	}
	count(WL_NP_STAT_DROP_NO_ENDPOINT);
	return TC_ACT_SHOT;
}

// Takes the masquerade port in `reply` (its destination port) for a new flow whose REPLY entry is
// `rev`: a port is free when no flow holds it, or when the flow holding it timed out. With
// `reclaim` (every probed port was held), an unconfirmed flow idle longer than snat_reclaim_age
// gives its port up too: a SYN flood cannot hold a backend's ports for ct_timeout_unconfirmed.
static __always_inline bool take_snat_port(struct wl_np_ct_key *reply, const struct wl_np_pending_value *rev, __u32 now, bool reclaim)
{
	struct wl_np_ct_value *live = bpf_map_lookup_elem(&wl_np_ct, reply);
	if (live) {
		if (reclaim || !ct_expired(live, reply->protocol, now))
			return false;
		// Its client would reach the new flow's backend through the FORWARD entry: both go.
		ct_forget(&wl_np_ct, live, reply);
	}
	if (!reclaim && bpf_map_update_elem(&wl_np_pending, reply, rev, BPF_NOEXIST) == 0)
		return true;
	struct wl_np_pending_value *held = bpf_map_lookup_elem(&wl_np_pending, reply);
	if (!held)
		return bpf_map_update_elem(&wl_np_pending, reply, rev, BPF_NOEXIST) == 0;
	if (pending_expired(&held->flow, now)) {
		count(WL_NP_STAT_UNCONFIRMED_EXPIRED);
	} else if (reclaim && now - held->flow.last_seen > snat_reclaim_age) {
		count(WL_NP_STAT_SNAT_RECLAIMED);
	} else {
		return false;
	}
	struct wl_np_ct_key forward;
	ct_other_key(&held->flow, reply, &forward);
	bpf_map_delete_elem(&wl_np_pending, &forward);
	return bpf_map_update_elem(&wl_np_pending, reply, rev, BPF_ANY) == 0;
}

// The ClientIP affinity key of an outside client.
static __always_inline void affinity_key_of(const __u8 *client, __u32 service_id, __u8 family, struct wl_affinity_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	__builtin_memcpy(key->client.addr, client, 16);
	key->service_id = service_id;
	key->kind = WL_AFFINITY_ADDR;
	key->family = family;
}

// A new flow to the service `svc` (the entry of `key`): picks its backend, writes its unconfirmed
// entries, and fills `fwd` with what to rewrite the packet to. NP_CONTINUE, or a verdict.
static __always_inline int new_flow(struct __sk_buff *skb, const struct flow *f, struct wl_service_key *key, const struct wl_service_value *svc,
				    __u8 ct_flags, __u32 now, struct wl_np_ct_value *fwd)
{
	__u16 count_ = svc->count, svc_flags = svc->flags;
	__u32 service_id = svc->service_id, affinity_timeout = svc->affinity_timeout, first_slot = svc->first_slot;
	if ((svc_flags & WL_SVC_SOURCE_RANGES) && !source_allowed(f)) {
		count(WL_NP_STAT_DROP_SOURCE_RANGE);
		return TC_ACT_SHOT;
	}
	if (count_ == 0)
		return no_endpoint(skb, f, svc_flags);

	__u32 backend_id = 0;
	__u16 slot = 0;
	bool sticky = (svc_flags & WL_SVC_AFFINITY) && affinity_timeout > 0;
	if (sticky) {
		struct wl_affinity_key affinity;
		affinity_key_of(f->saddr, service_id, f->family, &affinity);
		struct wl_affinity_value *chosen = bpf_map_lookup_elem(&wl_np_affinity, &affinity);
		// An older build kept outside clients' choices among the pods' (read only, until they age out).
		if (!chosen)
			chosen = bpf_map_lookup_elem(&wl_affinity, &affinity);
		if (chosen && bpf_ktime_get_ns() - chosen->last_used_ns <= (__u64)affinity_timeout * NSEC_PER_SEC &&
		    wl_remembered_backend_valid(svc->first_slot, svc->count, chosen->backend_id, chosen->slot)) {
			backend_id = chosen->backend_id;
			slot = chosen->slot;
		}
	}
	if (backend_id == 0) {
		slot = bpf_get_prandom_u32() % count_ + 1;
		backend_id = wl_backend_in_slot(first_slot, slot);
	}
	struct wl_backend *found = bpf_map_lookup_elem(&wl_backends, &backend_id);
	if (!found || found->family != f->family) {
		count(WL_NP_STAT_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	struct wl_backend backend = *found;

	bool snat = !(backend.flags & WL_BACKEND_LOCAL) && !(svc_flags & WL_SVC_LOCAL_ONLY);
	__builtin_memset(fwd, 0, sizeof(*fwd));
	__builtin_memcpy(fwd->saddr, f->saddr, 16);
	__builtin_memcpy(fwd->daddr, backend.addr, 16);
	fwd->sport = f->sport;
	fwd->dport = backend.port;
	fwd->backend_id = backend_id;
	fwd->service_id = service_id;
	fwd->slot = slot;
	fwd->flags = ct_flags | (snat ? WL_NP_CT_SNAT : 0) | (sticky ? WL_NP_CT_STICKY : 0);
	fwd->last_seen = now;

	struct wl_np_pending_value rev = {};
	__builtin_memcpy(rev.flow.saddr, f->daddr, 16);
	__builtin_memcpy(rev.flow.daddr, f->saddr, 16);
	rev.flow.sport = f->dport;
	rev.flow.dport = f->sport;
	rev.flow.backend_id = backend_id;
	rev.flow.service_id = service_id;
	rev.flow.slot = slot;
	rev.flow.flags = snat ? WL_NP_CT_SNAT : 0;
	rev.flow.last_seen = now;

	struct wl_np_ct_key reply = {};
	__builtin_memcpy(reply.saddr, backend.addr, 16);
	reply.sport = backend.port;
	reply.protocol = f->protocol;
	reply.family = f->family;
	reply.direction = WL_NP_CT_REPLY;
	if (snat) {
		if (snat_source(skb, f, backend.addr, fwd->saddr) < 0) {
			count(WL_NP_STAT_DROP_NO_ROUTE);
			return TC_ACT_SHOT;
		}
		__builtin_memcpy(reply.daddr, fwd->saddr, 16);
		__u32 range = (__u32)snat_port_max - snat_port_min + 1;
		__u32 start = tuple_hash(f);
		bool taken = false;
		// First a free port or one of a timed-out flow; only then one an unconfirmed flow holds.
		for (__u32 i = 0; i < SNAT_PROBES && !taken; i++) {
			reply.dport = bpf_htons(snat_port_min + (start + i) % range);
			taken = take_snat_port(&reply, &rev, now, false);
		}
		for (__u32 i = 0; i < SNAT_PROBES && !taken; i++) {
			reply.dport = bpf_htons(snat_port_min + (start + i) % range);
			taken = take_snat_port(&reply, &rev, now, true);
		}
		if (!taken) {
			count(WL_NP_STAT_DROP_SNAT_PORTS);
			return TC_ACT_SHOT;
		}
		fwd->sport = reply.dport;
	} else {
		__builtin_memcpy(reply.daddr, f->saddr, 16);
		reply.dport = f->sport;
		// A confirmed entry of this key would answer the replies first and the flow never confirm.
		bpf_map_delete_elem(&wl_np_ct, &reply);
		if (bpf_map_update_elem(&wl_np_pending, &reply, &rev, BPF_ANY) < 0) {
			count(WL_NP_STAT_DROP_ERROR);
			return TC_ACT_SHOT;
		}
	}
	struct wl_np_ct_key forward_key;
	ct_key_of(f, WL_NP_CT_FORWARD, &forward_key);
	struct wl_np_pending_value pending = { .flow = *fwd };
	if (bpf_map_update_elem(&wl_np_pending, &forward_key, &pending, BPF_ANY) < 0) {
		count(WL_NP_STAT_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	count(WL_NP_STAT_NEW_FLOW);
	return NP_CONTINUE;
}

// An unconfirmed flow's FORWARD entry `key` moves to wl_np_ct with its REPLY entry; the client's
// ClientIP affinity is written now that it is known to be real.
static __always_inline void confirm(const struct wl_np_pending_value *p, const struct wl_np_ct_key *key, __u32 now)
{
	struct wl_np_ct_value fwd = p->flow;
	fwd.flags &= ~WL_NP_CT_REPLIED;
	fwd.last_seen = now;
	struct wl_np_ct_key reply_key;
	ct_other_key(&fwd, key, &reply_key);
	struct wl_np_pending_value *held = bpf_map_lookup_elem(&wl_np_pending, &reply_key);
	if (!held) {
		count(WL_NP_STAT_EVICTED);
		return;
	}
	struct wl_np_ct_value rev = held->flow;
	rev.last_seen = now;
	// The way back first: from the moment the FORWARD entry is there, replies look in wl_np_ct.
	if (bpf_map_update_elem(&wl_np_ct, &reply_key, &rev, BPF_ANY) < 0 || bpf_map_update_elem(&wl_np_ct, key, &fwd, BPF_ANY) < 0) {
		count(WL_NP_STAT_DROP_ERROR);
		return;
	}
	bpf_map_delete_elem(&wl_np_pending, key);
	bpf_map_delete_elem(&wl_np_pending, &reply_key);
	count(WL_NP_STAT_CONFIRMED);
	if (fwd.flags & WL_NP_CT_STICKY) {
		struct wl_affinity_key affinity;
		affinity_key_of(key->saddr, fwd.service_id, key->family, &affinity);
		struct wl_affinity_value chosen = { .backend_id = fwd.backend_id, .slot = fwd.slot, .last_used_ns = bpf_ktime_get_ns() };
		bpf_map_update_elem(&wl_np_affinity, &affinity, &chosen, BPF_ANY);
	}
}

// A client packet of an unconfirmed flow the backend has answered: for TCP, an ACK carrying the
// SYN-ACK's sequence number + 1 confirms it; for UDP, any packet after a reply.
static __always_inline void confirm_if_due(struct __sk_buff *skb, const struct flow *f, const struct wl_np_pending_value *p, const struct wl_np_ct_key *key,
					   __u32 now)
{
	if (!(p->flow.flags & WL_NP_CT_REPLIED))
		return;
	if (f->protocol == IPPROTO_TCP) {
		if ((f->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_ACK)
			return;
		__be32 ack;
		if (bpf_skb_load_bytes(skb, f->l4_off + 8, &ack, sizeof(ack)) < 0)
			return;
		if (bpf_ntohl(ack) != p->handshake_ack) {
			count(WL_NP_STAT_HANDSHAKE_MISMATCH);
			return;
		}
	}
	confirm(p, key, now);
}

// The backend answered an unconfirmed flow (`reply` is its REPLY entry, at `self`): its FORWARD
// entry learns the number the client's ACK must carry (TCP: only a SYN-ACK counts).
static __always_inline void note_reply(struct __sk_buff *skb, const struct flow *f, const struct wl_np_ct_value *reply, const struct wl_np_ct_key *self)
{
	__u32 ack = 0;
	if (f->protocol == IPPROTO_TCP) {
		if ((f->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != (TCP_SYN | TCP_ACK))
			return;
		__be32 seq;
		if (bpf_skb_load_bytes(skb, f->l4_off + 4, &seq, sizeof(seq)) < 0)
			return;
		ack = bpf_ntohl(seq) + 1;
	}
	struct wl_np_ct_key forward;
	ct_other_key(reply, self, &forward);
	struct wl_np_pending_value *p = bpf_map_lookup_elem(&wl_np_pending, &forward);
	if (!p) {
		count(WL_NP_STAT_EVICTED);
		return;
	}
	p->handshake_ack = ack;
	p->flow.flags |= WL_NP_CT_REPLIED;
}

// The REPLY entry for a packet from a backend, confirmed or not, whose masquerading matches `snat`
// (ingress: masqueraded flows; egress: the others). False: none, the packet is not ours.
static __always_inline bool reply_entry(struct __sk_buff *skb, const struct flow *f, bool snat, __u32 now, struct wl_np_ct_value *to)
{
	struct wl_np_ct_key key;
	ct_key_of(f, WL_NP_CT_REPLY, &key);
	struct wl_np_ct_value *reply = bpf_map_lookup_elem(&wl_np_ct, &key);
	if (reply && !(reply->flags & WL_NP_CT_SNAT) == !snat) {
		ct_touch(&wl_np_ct, reply, &key, f, now, true);
		*to = *reply;
		return true;
	}
	struct wl_np_pending_value *pending = bpf_map_lookup_elem(&wl_np_pending, &key);
	if (!pending || !(pending->flow.flags & WL_NP_CT_SNAT) != !snat)
		return false;
	note_reply(skb, f, &pending->flow, &key);
	ct_touch(&wl_np_pending, &pending->flow, &key, f, now, false);
	*to = pending->flow;
	return true;
}

// A packet towards a frontend without a confirmed flow that holds: its unconfirmed flow, or a new
// one if the packet may start one. `stale`: wl_np_ct has an entry for it that no longer holds.
// Fills `to`; NP_CONTINUE, or a verdict.
static __always_inline int unconfirmed_or_new_flow(struct __sk_buff *skb, const struct flow *f, const struct wl_np_ct_key *key, struct wl_np_ct_value *stale,
						   bool cluster_ips, __u32 now, struct wl_np_ct_value *to)
{
	struct wl_np_pending_value *pending = bpf_map_lookup_elem(&wl_np_pending, key);
	if (pending && pending_expired(&pending->flow, now)) {
		count(WL_NP_STAT_UNCONFIRMED_EXPIRED);
		ct_forget(&wl_np_pending, &pending->flow, key);
		pending = NULL;
	}
	if (pending && forward_entry_holds(&pending->flow, f, now)) {
		ct_touch(&wl_np_pending, &pending->flow, key, f, now, true);
		*to = pending->flow;
		confirm_if_due(skb, f, pending, key, now);
		return NP_CONTINUE;
	}
	struct wl_service_key svc_key;
	__u8 ct_flags = 0;
	struct wl_service_value *svc = lookup_frontend(f, cluster_ips, &svc_key, &ct_flags);
	if (!svc)
		return TC_ACT_UNSPEC;
	// Only a SYN starts a TCP flow (see "Floods" above).
	if (f->protocol == IPPROTO_TCP && (f->tcp_flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN) {
		// To the node's own stack, which resets it, or whose conntrack still translates a flow begun
		// under the iptables mode (a ClusterIP from a Peer too: on the mesh it cannot loop).
		if (ct_flags & (WL_NP_CT_NODEPORT | WL_NP_CT_CLUSTER_IP)) {
			count(WL_NP_STAT_PASS_NOT_SYN);
			return TC_ACT_UNSPEC;
		}
		count(WL_NP_STAT_DROP_NOT_SYN);
		return TC_ACT_SHOT;
	}
	// What the tuple had before goes, with its masquerade port: its REPLY entry would otherwise
	// answer for the new flow, and its FORWARD entry be found first.
	if (stale)
		ct_forget(&wl_np_ct, stale, key);
	if (pending)
		ct_forget(&wl_np_pending, &pending->flow, key);
	return new_flow(skb, f, &svc_key, svc, ct_flags, now, to);
}

// `cluster_ips`: ClusterIPs are frontends too (the mesh interface).
static __always_inline int handle_ingress(struct __sk_buff *skb, __u32 l3_off, bool cluster_ips)
{
	struct flow f;
	if (parse_flow(skb, l3_off, &f) < 0)
		return TC_ACT_UNSPEC;
	__u32 now = now_seconds();
	struct wl_np_ct_key key;
	// Zeroed: clang cannot tell that every NP_CONTINUE fills it, and would read a register it never set.
	struct wl_np_ct_value to = {};

	// 3. A masqueraded flow's reply, to one of our masquerade ports.
	__u16 dport = bpf_ntohs(f.dport);
	if (dport >= snat_port_min && dport <= snat_port_max && reply_entry(skb, &f, true, now, &to)) {
		if (rewrite(skb, &f, &to) < 0) {
			count(WL_NP_STAT_DROP_ERROR);
			return TC_ACT_SHOT;
		}
		count(WL_NP_STAT_REPLY_INGRESS);
		return forward(skb, &f, &to);
	}

	// 1. Towards a service: a confirmed flow, an unconfirmed one, or a new one.
	ct_key_of(&f, WL_NP_CT_FORWARD, &key);
	struct wl_np_ct_value *known = bpf_map_lookup_elem(&wl_np_ct, &key);
	if (known && forward_entry_holds(known, &f, now)) {
		ct_touch(&wl_np_ct, known, &key, &f, now, true);
		to = *known;
	} else {
		int verdict = unconfirmed_or_new_flow(skb, &f, &key, known, cluster_ips, now, &to);
		if (verdict != NP_CONTINUE)
			return verdict;
	}
	if (rewrite(skb, &f, &to) < 0) {
		count(WL_NP_STAT_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	count(WL_NP_STAT_FORWARD);
	// DNAT only (case a): the kernel routes it, so netfilter's conntrack records C -> B and B's
	// reply counts as that flow's reply. Redirected past netfilter, the reply would look like a new
	// connection from a pod and meet the node's own NAT rules (the mesh masquerades pod traffic
	// leaving the cluster), and the egress program would no longer recognise it.
	if (!(to.flags & WL_NP_CT_SNAT)) {
		count(WL_NP_STAT_TO_KERNEL);
		return TC_ACT_OK;
	}
	return forward(skb, &f, &to);
}

// 2. A local backend's reply on its way out to the client.
static __always_inline int handle_egress(struct __sk_buff *skb, __u32 l3_off)
{
	struct flow f;
	if (parse_flow(skb, l3_off, &f) < 0)
		return TC_ACT_UNSPEC;
	struct wl_np_ct_value to;
	if (!reply_entry(skb, &f, false, now_seconds(), &to))
		return TC_ACT_UNSPEC;
	if (rewrite(skb, &f, &to) < 0) {
		count(WL_NP_STAT_DROP_ERROR);
		return TC_ACT_SHOT;
	}
	count(WL_NP_STAT_REPLY_EGRESS);
	return TC_ACT_OK;
}

// Ethernet interfaces (the underlay).
SEC("tc")
int np_ingress(struct __sk_buff *skb)
{
	return handle_ingress(skb, ETH_HLEN, false);
}

SEC("tc")
int np_egress(struct __sk_buff *skb)
{
	return handle_egress(skb, ETH_HLEN);
}

// Interfaces without a link-layer header (WireGuard, tun): the packet starts with the IP header.
SEC("tc")
int np_ingress_l3(struct __sk_buff *skb)
{
	return handle_ingress(skb, 0, false);
}

SEC("tc")
int np_egress_l3(struct __sk_buff *skb)
{
	return handle_egress(skb, 0);
}

// The mesh interface (WireGuard) in: as np_ingress_l3, and ClusterIPs from Peers.
SEC("tc")
int np_ingress_mesh(struct __sk_buff *skb)
{
	return handle_ingress(skb, 0, true);
}

char LICENSE[] SEC("license") = "GPL";
