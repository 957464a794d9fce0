// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Socket-level load balancing (east-west), attached to a cgroup v2 directory: at connect() and at
// sendmsg() of an unconnected UDP socket, a service frontend (ClusterIP, ExternalIP or LB IP:port,
// or a node address:NodePort) becomes a backend; at recvmsg() and getpeername() the backend becomes
// the frontend again. Nothing runs per packet on an established flow. Destinations that are not in
// the maps pass untouched: these programs may sit at the root of the cgroup hierarchy, where every
// process of the machine connects through them. When a socket is released, what it left in the
// shared maps (reverse translation, its own backend memory) goes with it. Map layouts:
// include/wirelane_maps.h.
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "wirelane_maps.h"
#include "wirelane_lb.h"

#define AF_INET 2
#define AF_INET6 10
#define ECONNREFUSED 111
#define EHOSTUNREACH 113

// cgroup sock_addr verdicts: 0 fails the call (with bpf_set_retval's error instead of EPERM).
#define SYS_REJECT 0
#define SYS_PROCEED 1

#define NSEC_PER_SEC 1000000000ULL
// An affinity entry's last-used time is refreshed at most this often: a chatty client would
// otherwise write the map at every connect.
// (A build may set it with -D: the upgrade tests build an older program that way.)
#ifndef AFFINITY_REFRESH_NS
#define AFFINITY_REFRESH_NS NSEC_PER_SEC
#endif

// What an unconnected UDP socket left in the shared maps, for sock_release (wirelane_maps.h).
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct wl_sock_owned);
} wl_sock_owned SEC(".maps");

// Refused calls by cause (WL_SOCK_STAT_*), per CPU; the agent sums them for its metrics.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WL_SOCK_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} wl_sock_stats SEC(".maps");

static __always_inline void count_refusal(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&wl_sock_stats, &slot);
	if (value)
		*value += 1;
}

// The destination a socket asked for, before translation.
struct frontend {
	__u8 addr[16];
	__be16 port;
	__u8 family;
	__u8 protocol;
};

static __always_inline void frontend_from_ctx(struct bpf_sock_addr *ctx, struct frontend *f, __u8 family)
{
	f->family = family;
	f->protocol = (__u8)ctx->protocol;
	f->port = (__be16)ctx->user_port;
	if (family == WL_FAMILY_IPV4) {
		__u32 ip = ctx->user_ip4;
		__builtin_memcpy(f->addr, &ip, 4);
	} else {
		__u32 w0 = ctx->user_ip6[0], w1 = ctx->user_ip6[1], w2 = ctx->user_ip6[2], w3 = ctx->user_ip6[3];
		__builtin_memcpy(f->addr, &w0, 4);
		__builtin_memcpy(f->addr + 4, &w1, 4);
		__builtin_memcpy(f->addr + 8, &w2, 4);
		__builtin_memcpy(f->addr + 12, &w3, 4);
	}
}

static __always_inline void address_to_ctx(struct bpf_sock_addr *ctx, const __u8 *addr, __be16 port, __u8 family)
{
	if (family == WL_FAMILY_IPV4) {
		__u32 ip;
		__builtin_memcpy(&ip, addr, 4);
		ctx->user_ip4 = ip;
	} else {
		__u32 w0, w1, w2, w3;
		__builtin_memcpy(&w0, addr, 4);
		__builtin_memcpy(&w1, addr + 4, 4);
		__builtin_memcpy(&w2, addr + 8, 4);
		__builtin_memcpy(&w3, addr + 12, 4);
		ctx->user_ip6[0] = w0;
		ctx->user_ip6[1] = w1;
		ctx->user_ip6[2] = w2;
		ctx->user_ip6[3] = w3;
	}
	ctx->user_port = (__u32)port;
}

// The service entry for a frontend, seen from this node (internal scope): the exact address
// first, else the NodePort wildcard when the address is one of the node's.
static __always_inline struct wl_service_value *lookup_service(const struct frontend *f)
{
	struct wl_service_key key = {};
	__builtin_memcpy(key.addr, f->addr, 16);
	key.port = f->port;
	key.protocol = f->protocol;
	key.family = f->family;
	key.scope = WL_SCOPE_INTERNAL;
	struct wl_service_value *svc = bpf_map_lookup_elem(&wl_services, &key);
	if (svc)
		return svc;

	struct wl_node_addr_key node = {};
	__builtin_memcpy(node.addr, f->addr, 16);
	node.family = f->family;
	if (!bpf_map_lookup_elem(&wl_node_addrs, &node))
		return NULL;
	__builtin_memset(key.addr, 0, 16);
	return bpf_map_lookup_elem(&wl_services, &key);
}

// Where the socket's remembered backend comes from: the service's ClientIP affinity (one client is
// one network namespace, as Cilium does), else for UDP sendmsg the socket itself, so that one
// unconnected socket keeps one backend per service. 0: pick at random every time.
static __always_inline __u8 memory_kind(__u16 flags, bool sendmsg)
{
	if (flags & WL_SVC_AFFINITY)
		return WL_AFFINITY_NETNS;
	return sendmsg ? WL_AFFINITY_SOCKET : 0;
}

// Lists a backend (and the service of its WL_AFFINITY_SOCKET entry) in the socket's wl_sock_owned,
// unless it is there. Threads sending on one socket at once may race here: the worst outcome is an
// entry left to the LRU.
static __always_inline void remember_owned(struct bpf_sock_addr *ctx, const __u8 *addr, __be16 port, __u8 family, __u32 service_id)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return;
	struct wl_sock_owned *owned = bpf_sk_storage_get(&wl_sock_owned, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!owned)
		return;
	for (int i = 0; i < WL_SOCK_OWNED_SLOTS; i++) {
		struct wl_sock_owned_entry *e = &owned->entries[i];
		if (e->family == family && e->port == port && e->service_id == service_id && wl_addr_equal(e->addr, addr))
			return;
	}
	__u32 at = owned->next % WL_SOCK_OWNED_SLOTS;
	owned->next = at + 1;
	struct wl_sock_owned_entry *e = &owned->entries[at];
	__builtin_memcpy(e->addr, addr, 16);
	e->port = port;
	e->family = family;
	e->pad = 0;
	e->service_id = service_id;
}

// Translates a frontend to a backend in ctx. SYS_PROCEED for anything not a service.
static __always_inline int translate(struct bpf_sock_addr *ctx, __u8 family, bool sendmsg)
{
	struct frontend f = {};
	frontend_from_ctx(ctx, &f, family);
	struct wl_service_value *svc = lookup_service(&f);
	if (!svc)
		return SYS_PROCEED;

	// Read once: the agent may rewrite the entry while this runs.
	__u16 count = svc->count;
	__u32 first_slot = svc->first_slot;
	__u16 flags = svc->flags;
	__u32 service_id = svc->service_id;
	__u64 timeout_ns = (__u64)svc->affinity_timeout * NSEC_PER_SEC;
	if (count == 0) {
		// Reject: the service has no endpoint, the client fails at once as with kube-proxy's
		// REJECT. Drop (a Local policy left none here): a socket cannot be left hanging, so
		// the nearest honest error.
		bool drop = flags & WL_SVC_NO_ENDPOINT_DROP;
		count_refusal(drop ? WL_SOCK_STAT_NO_LOCAL_ENDPOINT : WL_SOCK_STAT_NO_ENDPOINT);
		bpf_set_retval(drop ? -EHOSTUNREACH : -ECONNREFUSED);
		return SYS_REJECT;
	}

	__u8 kind = memory_kind(flags, sendmsg);
	struct wl_affinity_key akey = {};
	__u64 now = bpf_ktime_get_ns();
	__u32 backend_id = 0;
	__u16 slot = 0;
	bool remember = false;
	if (kind) {
		akey.client.netns_cookie = kind == WL_AFFINITY_NETNS ? bpf_get_netns_cookie(ctx) : bpf_get_socket_cookie(ctx);
		akey.service_id = service_id;
		akey.kind = kind;
		akey.family = family;
		struct wl_affinity_value *seen = bpf_map_lookup_elem(&wl_affinity, &akey);
		if (seen) {
			__u32 id = seen->backend_id;
			__u16 at = seen->slot;
			__u64 last = seen->last_used_ns;
			bool fresh = kind == WL_AFFINITY_SOCKET || now - last <= timeout_ns;
			if (fresh && wl_remembered_backend_valid(first_slot, count, id, at)) {
				backend_id = id;
				slot = at;
				remember = kind == WL_AFFINITY_NETNS && now - last > AFFINITY_REFRESH_NS;
			}
		}
	}
	if (!backend_id) {
		slot = (__u16)(bpf_get_prandom_u32() % count) + 1;
		backend_id = wl_backend_in_slot(first_slot, slot);
		remember = kind != 0;
	}
	struct wl_backend *backend = backend_id ? bpf_map_lookup_elem(&wl_backends, &backend_id) : NULL;
	if (!backend || backend->family != family) {
		// Only while the agent is mid-way through a change it would never leave like this.
		count_refusal(WL_SOCK_STAT_NO_BACKEND);
		bpf_set_retval(-ECONNREFUSED);
		return SYS_REJECT;
	}
	if (remember) {
		struct wl_affinity_value value = { .backend_id = backend_id, .slot = slot, .last_used_ns = now };
		bpf_map_update_elem(&wl_affinity, &akey, &value, BPF_ANY);
	}

	// Replies (recvmsg) and getpeername() must show the frontend the socket asked for.
	struct wl_sock_rev_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rkey.addr, backend->addr, 16);
	rkey.port = backend->port;
	rkey.family = family;
	struct wl_sock_rev_value *known = bpf_map_lookup_elem(&wl_sock_rev, &rkey);
	bool written = remember && kind == WL_AFFINITY_SOCKET;
	if (!known || known->port != f.port || known->service_id != service_id || !wl_addr_equal(known->addr, f.addr)) {
		struct wl_sock_rev_value rev = {};
		__builtin_memcpy(rev.addr, f.addr, 16);
		rev.port = f.port;
		rev.family = family;
		rev.service_id = service_id;
		bpf_map_update_elem(&wl_sock_rev, &rkey, &rev, BPF_ANY);
		written = true;
	}
	// A connected socket's entry is found by its peer at release; an unconnected one's are listed.
	if (sendmsg && written)
		remember_owned(ctx, rkey.addr, rkey.port, family, service_id);

	address_to_ctx(ctx, backend->addr, backend->port, family);
	return SYS_PROCEED;
}

// recvmsg()/getpeername(): a backend this socket was sent to shows as the frontend it asked for.
static __always_inline int translate_back(struct bpf_sock_addr *ctx, __u8 family)
{
	struct frontend f = {};
	frontend_from_ctx(ctx, &f, family);
	struct wl_sock_rev_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rkey.addr, f.addr, 16);
	rkey.port = f.port;
	rkey.family = family;
	struct wl_sock_rev_value *rev = bpf_map_lookup_elem(&wl_sock_rev, &rkey);
	if (rev)
		address_to_ctx(ctx, rev->addr, rev->port, family);
	return SYS_PROCEED;
}

// The socket is going: its reverse translation and its own backend memory go too. A connected
// socket's wl_sock_rev entry is keyed by its peer (the backend connect() was sent to); what an
// unconnected one was sent to is listed in its wl_sock_owned. NETNS affinity stays: it is the
// pod's, not the socket's.
SEC("cgroup/sock_release")
int sock_release(struct bpf_sock *ctx)
{
	__u8 family = ctx->family == AF_INET ? WL_FAMILY_IPV4 : ctx->family == AF_INET6 ? WL_FAMILY_IPV6 : 0;
	if (!family)
		return SYS_PROCEED;
	struct wl_sock_rev_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rkey.family = family;
	__be16 peer_port = ctx->dst_port;
	if (peer_port) {
		if (family == WL_FAMILY_IPV4) {
			__u32 ip = ctx->dst_ip4;
			__builtin_memcpy(rkey.addr, &ip, 4);
		} else {
			__u32 w0 = ctx->dst_ip6[0], w1 = ctx->dst_ip6[1], w2 = ctx->dst_ip6[2], w3 = ctx->dst_ip6[3];
			__builtin_memcpy(rkey.addr, &w0, 4);
			__builtin_memcpy(rkey.addr + 4, &w1, 4);
			__builtin_memcpy(rkey.addr + 8, &w2, 4);
			__builtin_memcpy(rkey.addr + 12, &w3, 4);
		}
		rkey.port = peer_port;
		bpf_map_delete_elem(&wl_sock_rev, &rkey);
	}
	struct wl_sock_owned *owned = bpf_sk_storage_get(&wl_sock_owned, ctx, 0, 0);
	if (!owned)
		return SYS_PROCEED;
	struct wl_affinity_key akey = {};
	akey.client.socket_cookie = rkey.cookie;
	akey.kind = WL_AFFINITY_SOCKET;
	for (int i = 0; i < WL_SOCK_OWNED_SLOTS; i++) {
		struct wl_sock_owned_entry *e = &owned->entries[i];
		if (!e->family)
			continue;
		__builtin_memcpy(rkey.addr, e->addr, 16);
		rkey.port = e->port;
		rkey.family = e->family;
		bpf_map_delete_elem(&wl_sock_rev, &rkey);
		akey.service_id = e->service_id;
		akey.family = e->family;
		bpf_map_delete_elem(&wl_affinity, &akey);
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, WL_FAMILY_IPV4, false);
}

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, WL_FAMILY_IPV6, false);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return translate(ctx, WL_FAMILY_IPV4, true);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return translate(ctx, WL_FAMILY_IPV6, true);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, WL_FAMILY_IPV4);
}

SEC("cgroup/recvmsg6")
int sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, WL_FAMILY_IPV6);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, WL_FAMILY_IPV4);
}

SEC("cgroup/getpeername6")
int sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, WL_FAMILY_IPV6);
}

char LICENSE[] SEC("license") = "GPL";
