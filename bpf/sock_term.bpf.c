// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Ends connected UDP sockets that sock_lb sent to a backend which has since left the service. A
// connected socket is translated once, at connect(): unlike a conntrack entry nothing later moves
// it, so the agent runs this iterator (kernel 6.5+: bpf_sock_destroy) where kube-proxy would flush
// conntrack. The socket gets ECONNABORTED and is disconnected; the application reconnects and
// sock_lb picks a current backend. The agent fills wl_sock_term with what went stale, creates
// one iterator per network namespace (an iterator walks the namespace that created it) and reads
// one __u32 per socket ended.
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "wirelane_maps.h"

#define AF_INET 2
#define AF_INET6 10

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_SOCK_TERM_MAX);
	__type(key, struct wl_sock_term_key);
	__type(value, __u32);
} wl_sock_term SEC(".maps");

// Whether (frontend, backend) or one of its wildcards (a zero address) is listed.
static __always_inline bool stale(struct wl_sock_term_key *key, const __u8 *frontend, const __u8 *backend)
{
	__builtin_memcpy(key->frontend, frontend, 16);
	__builtin_memcpy(key->backend, backend, 16);
	if (bpf_map_lookup_elem(&wl_sock_term, key))
		return true;
	__builtin_memset(key->backend, 0, 16);
	if (bpf_map_lookup_elem(&wl_sock_term, key))
		return true;
	__builtin_memset(key->frontend, 0, 16);
	if (bpf_map_lookup_elem(&wl_sock_term, key))
		return true;
	__builtin_memcpy(key->backend, backend, 16);
	return bpf_map_lookup_elem(&wl_sock_term, key) != NULL;
}

SEC("iter/udp")
int sock_term_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;
	if (!udp)
		return 0;
	struct sock *sk = (struct sock *)udp;
	struct sock_common *common = &sk->__sk_common;
	__be16 dport = common->skc_dport;
	if (!dport)
		return 0; // not connected: sendmsg() translates every datagram afresh

	struct wl_sock_rev_key rkey = {};
	rkey.cookie = bpf_get_socket_cookie(sk);
	rkey.port = dport;
	__u16 family = common->skc_family;
	if (family == AF_INET) {
		__u32 daddr = common->skc_daddr;
		__builtin_memcpy(rkey.addr, &daddr, 4);
		rkey.family = WL_FAMILY_IPV4;
	} else if (family == AF_INET6) {
		__u32 w0 = common->skc_v6_daddr.in6_u.u6_addr32[0], w1 = common->skc_v6_daddr.in6_u.u6_addr32[1];
		__u32 w2 = common->skc_v6_daddr.in6_u.u6_addr32[2], w3 = common->skc_v6_daddr.in6_u.u6_addr32[3];
		__builtin_memcpy(rkey.addr, &w0, 4);
		__builtin_memcpy(rkey.addr + 4, &w1, 4);
		__builtin_memcpy(rkey.addr + 8, &w2, 4);
		__builtin_memcpy(rkey.addr + 12, &w3, 4);
		rkey.family = WL_FAMILY_IPV6;
	} else {
		return 0;
	}
	// Only sockets sock_lb translated have an entry: a socket connected to the backend's address
	// directly is none of the agent's business.
	struct wl_sock_rev_value *rev = bpf_map_lookup_elem(&wl_sock_rev, &rkey);
	if (!rev)
		return 0;
	struct wl_sock_term_key tkey = {};
	tkey.port = rev->port;
	tkey.family = rkey.family;
	__u8 frontend[16];
	__builtin_memcpy(frontend, rev->addr, 16);
	if (!stale(&tkey, frontend, rkey.addr))
		return 0;
	if (bpf_sock_destroy(common) == 0) {
		__u32 one = 1;
		bpf_seq_write(ctx->meta->seq, &one, sizeof(one));
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
