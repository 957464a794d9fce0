/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps of the fast path (bpf/fastpath.bpf.c) and its agent side
 * (src/dataplane/ebpf/fast-path.ts). Include after "vmlinux.h". Same rules as wirelane_maps.h:
 * explicit padding, writers zero keys and values, addresses 16 bytes in network order (IPv4 in
 * bytes 0..3), everything else host order. Pinned in the agent's pin directory
 * (<bpf-dir>/fast-path/<map name>), so forwarding goes on across an agent restart.
 *
 * wl_fp_cidrs (LPM_TRIE): the cluster's pod CIDRs, the only destinations the fast path forwards
 *   to. Key {prefixlen, family, pad, addr}: prefixlen = WL_FP_CIDR_FAMILY_BITS + the CIDR's
 *   prefix length, so the family is part of the match. Value: WL_FP_CIDR_* flags.
 *
 * wl_fp_devs (HASH): what an interface the FIB may answer with is to the fast path, by ifindex
 *   (WL_FP_DEV_*). Written by the agent for the pod bridge, the WireGuard device and the underlay;
 *   a route through any other interface (a tunnel, a device another program owns) goes to the
 *   stack.
 *
 * wl_fp_ports (LRU_HASH): a pod's MAC address to the host side of its veth (ifindex), learnt by fp_pod
 *   from the frames the pod sends, as the bridge learns its forwarding database. The IP address to
 *   MAC step is the kernel's own neighbour table (bpf_fib_lookup), so the fast path trusts nothing
 *   the bridge and the stack would not. The agent removes entries of ports that are gone.
 *
 * wl_fp_stats (PERCPU_ARRAY): counters by WL_FP_STAT_*, exported as wirelane_fast_path_packets_total.
 */
#ifndef WIRELANE_FASTPATH_H
#define WIRELANE_FASTPATH_H

#define WL_FP_CIDRS_MAX 4096
#define WL_FP_DEVS_MAX 256
#define WL_FP_PORTS_MAX 16384
#define WL_FP_STAT_SLOTS 32

/* Bits of a wl_fp_cidrs key's data before the address: family and padding. */
#define WL_FP_CIDR_FAMILY_BITS 32

struct wl_fp_cidr_key {
	__u32 prefixlen;
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
	__u8 addr[16];
};
_Static_assert(sizeof(struct wl_fp_cidr_key) == 24, "wl_fp_cidr_key layout");

#define WL_FP_CIDR_CLUSTER 1 /* a pod CIDR of the cluster */
#define WL_FP_CIDR_LOCAL 2   /* one of this node's pod CIDRs */

struct wl_fp_cidr_value {
	__u32 flags;
};

#define WL_FP_DEV_BRIDGE 1    /* the pod bridge: its pods are reached through their veths */
#define WL_FP_DEV_WIREGUARD 2 /* the WireGuard device: no link-layer header */
#define WL_FP_DEV_UNDERLAY 3  /* an Ethernet interface to other nodes */

struct wl_fp_dev_value {
	__u32 kind;
};

struct wl_fp_port_key {
	__u8 mac[6];
	__u8 pad[2];
};
_Static_assert(sizeof(struct wl_fp_port_key) == 8, "wl_fp_port_key layout");

struct wl_fp_port_value {
	__u32 ifindex;
	__u32 pad;
};

/* wl_fp_stats slots (never renumbered) */
#define WL_FP_STAT_SAME_NODE 0      /* pod to a pod of this node (bpf_redirect_peer) */
#define WL_FP_STAT_TO_UNDERLAY 1    /* to another node over the underlay (bpf_redirect_neigh) */
#define WL_FP_STAT_TO_WIREGUARD 2   /* to another location (bpf_redirect to the WireGuard device) */
#define WL_FP_STAT_FROM_UNDERLAY 3  /* from the underlay to a pod of this node (bpf_redirect_peer) */
#define WL_FP_STAT_FROM_WIREGUARD 4 /* from the WireGuard device to a pod of this node */
#define WL_FP_STAT_PASS_NAT 5       /* to the stack: netfilter translated the flow (conntrack) */
#define WL_FP_STAT_PASS_NEIGH 6     /* to the stack: no neighbour entry or learnt port yet */
#define WL_FP_STAT_PASS_ROUTE 7     /* to the stack: the route leaves elsewhere, or none, or TTL ends */
#define WL_FP_STAT_PASS_ERROR 8     /* to the stack: a helper failed */

#endif
