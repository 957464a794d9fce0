/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps only the tc NodePort program (bpf/nodeport.bpf.c) and its agent side
 * (src/dataplane/ebpf/nodeport.ts) use; the service, backend, node-address and affinity maps it
 * reads come from wirelane_maps.h. Include after "vmlinux.h" and "wirelane_maps.h". Same rules
 * (and the same table in src/dataplane/ebpf/layouts.ts, checked against BTF):
 * explicit padding, writers zero keys and values, addresses 16 bytes in network order (IPv4 in
 * bytes 0..3), ports network order, everything else host order. Pinned next to the shared maps
 * (<bpffs>/wirelane/<map name>) so flows in progress survive an agent restart.
 *
 * wl_np_ct (LRU_HASH): conntrack and NAT of confirmed flows, one entry per direction. The key is
 *   the packet's tuple as it arrives at the program, the value the tuple to rewrite it to:
 *     FORWARD {client:cport -> frontend:fport} => {client or node:snat_port -> backend:bport}
 *     REPLY   {backend:bport -> client or node:snat_port} => {frontend:fport -> client:cport}
 *   REPLY entries with WL_NP_CT_SNAT come back to this node and are matched at ingress; the others
 *   (local backends, the client's address kept) leave through the interface and are matched at
 *   egress. The LRU only evicts when full, so every entry carries its last-seen time and a flow
 *   idle longer than its timeout counts as gone. Only flows whose client proved it receives the
 *   backend's packets get here (see wl_np_pending): a flood from spoofed sources never writes
 *   this map, so it cannot evict the flows in it.
 *
 * wl_np_pending (LRU_HASH): the same two entries for flows not confirmed yet, as conntrack's
 *   SYN_SENT/SYN_RECV and unreplied UDP: created by a TCP SYN (never by another TCP packet) or a
 *   UDP datagram, under the short ct_timeout_unconfirmed. The value is the wl_np_ct value and the
 *   acknowledgement number that confirms a TCP flow: the backend's SYN-ACK sequence number + 1.
 *   A flow moves to wl_np_ct when the client's ACK carries exactly that number (a spoofed source
 *   never sees the SYN-ACK: 1 in 2^32), or for UDP when the client sends again after a reply. A
 *   flood churns this map only; a real handshake completes within a round trip, long before the
 *   flood can evict it (the map's size over the flood's rate of new tuples).
 *
 * wl_np_affinity (LRU_HASH): ClientIP affinity of outside clients ({client address, service_id,
 *   WL_AFFINITY_ADDR, family} as in wl_affinity_key), written when a flow is confirmed. The tc
 *   path's own map: clients from outside cannot evict the pods' choices in wl_affinity (an older
 *   build kept them there; the program still reads those on a miss).
 *
 * wl_np_ranges (LPM_TRIE): loadBalancerSourceRanges. The key's data is {frontend addr, port,
 *   protocol, family, source}; prefixlen = WL_NP_RANGE_FRONTEND_BITS + the range's prefix length,
 *   so a lookup with the full source address finds whether any range of that frontend holds it.
 *   Only consulted for a service entry with WL_SVC_SOURCE_RANGES.
 *
 * wl_np_snat (ARRAY, 2): the address to masquerade to, [0] IPv4, [1] IPv6, when the kernel cannot
 *   tell the route's source address (bpf_fib_lookup without BPF_FIB_LOOKUP_SRC, before 6.8).
 *
 * wl_np_stats (PERCPU_ARRAY): counters by WL_NP_STAT_*; WL_NP_STAT_SLOTS of them, room for new ones
 *   without another map layout. The agent exports them as wirelane_nodeport_* metrics.
 */
#ifndef WIRELANE_NODEPORT_H
#define WIRELANE_NODEPORT_H

#define WL_MAP_NP_CT "wl_np_ct"
#define WL_MAP_NP_RANGES "wl_np_ranges"
#define WL_MAP_NP_SNAT "wl_np_snat"
#define WL_MAP_NP_STATS "wl_np_stats"
#define WL_MAP_NP_PENDING "wl_np_pending"
#define WL_MAP_NP_AFFINITY "wl_np_affinity"

/* Default sizes (entries: two per flow); the agent sets its flags' sizes before load. */
#define WL_NP_CT_MAX 131072
#define WL_NP_PENDING_MAX 32768
#define WL_NP_AFFINITY_MAX 65536
#define WL_NP_RANGES_MAX 16384
/* wl_np_ct's map flags; a build may set them with -D (the upgrade tests' older map layout does). */
#ifndef WL_NP_CT_FLAGS
#define WL_NP_CT_FLAGS 0
#endif

/* wl_np_ct_key.direction */
#define WL_NP_CT_FORWARD 0
#define WL_NP_CT_REPLY 1

/* wl_np_ct_value.flags */
#define WL_NP_CT_SNAT (1 << 0)     /* the source was masqueraded to the node: replies return here */
#define WL_NP_CT_NODEPORT (1 << 1) /* FORWARD: the frontend is the NodePort wildcard entry */
#define WL_NP_CT_CLOSING (1 << 2)  /* a FIN or RST went by: the short timeout applies */
#define WL_NP_CT_REPLIED (1 << 3)  /* wl_np_pending FORWARD: the backend answered (TCP: a SYN-ACK) */
#define WL_NP_CT_STICKY (1 << 4)   /* FORWARD: the service has ClientIP affinity, written at confirmation */
#define WL_NP_CT_CLUSTER_IP (1 << 5) /* FORWARD: the frontend is a ClusterIP (internal scope), reached over the mesh */

struct wl_np_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 protocol;
	__u8 family;    /* WL_FAMILY_* */
	__u8 direction; /* WL_NP_CT_* */
	__u8 pad;
};
_Static_assert(sizeof(struct wl_np_ct_key) == 40, "wl_np_ct_key is 40 bytes");

struct wl_np_ct_value {
	__u8 saddr[16]; /* rewrite the source to */
	__u8 daddr[16]; /* rewrite the destination to */
	__be16 sport;
	__be16 dport;
	__u32 backend_id; /* FORWARD: the choice, re-checked against the service (see nodeport.bpf.c) */
	__u32 service_id;
	__u16 slot;       /* FORWARD: the slot backend_id was in when chosen */
	__u8 flags;       /* WL_NP_CT_* */
	__u8 pad;
	__u32 last_seen;  /* seconds since boot (bpf_ktime_get_ns) */
};
_Static_assert(sizeof(struct wl_np_ct_value) == 52, "wl_np_ct_value is 52 bytes");

struct wl_np_pending_value {
	struct wl_np_ct_value flow;
	__u32 handshake_ack; /* FORWARD of a TCP flow: the backend's SYN-ACK sequence number + 1, host order */
};
_Static_assert(sizeof(struct wl_np_pending_value) == 56, "wl_np_pending_value is 56 bytes");

/* Bits of wl_np_range_key data before the source: addr (128) + port (16) + protocol, family, pad (24). */
#define WL_NP_RANGE_FRONTEND_BITS 168

struct wl_np_range_key {
	__u32 prefixlen;
	__u8 addr[16];   /* the load-balancer IP */
	__be16 port;
	__u8 protocol;
	__u8 family;
	__u8 pad;
	__u8 source[16]; /* the range's network address */
	__u8 pad2[3];
};
_Static_assert(sizeof(struct wl_np_range_key) == 44, "wl_np_range_key is 44 bytes");

struct wl_np_range_value {
	__u32 flags; /* none defined yet; 0 */
};

struct wl_np_snat_value {
	__u8 addr[16]; /* all zero: none configured */
};

/* wl_np_stats slots (never renumbered: counters survive an upgrade by slot) */
#define WL_NP_STAT_NEW_FLOW 0          /* a backend chosen for a new flow (unconfirmed, in wl_np_pending) */
#define WL_NP_STAT_FORWARD 1           /* a packet towards a backend translated */
#define WL_NP_STAT_REPLY_INGRESS 2     /* a reply of a masqueraded flow translated back */
#define WL_NP_STAT_REPLY_EGRESS 3      /* a local backend's reply translated back */
#define WL_NP_STAT_DROP_NO_ENDPOINT 4  /* no endpoint (drop, or UDP with no endpoint at all) */
#define WL_NP_STAT_REJECT 5            /* a TCP reset sent for a service without endpoints */
#define WL_NP_STAT_DROP_SOURCE_RANGE 6 /* not in loadBalancerSourceRanges */
#define WL_NP_STAT_DROP_SNAT_PORTS 7   /* no free masquerade port after probing (exhaustion) */
#define WL_NP_STAT_DROP_NO_ROUTE 8     /* a masqueraded packet the FIB cannot forward */
#define WL_NP_STAT_TO_KERNEL 9         /* translated, then left to the kernel's routing */
#define WL_NP_STAT_DROP_ERROR 10       /* a map or helper failed */
#define WL_NP_STAT_PASS_NOT_SYN 11     /* TCP without SYN of no known flow to a NodePort: left to the node's stack */
#define WL_NP_STAT_DROP_NOT_SYN 12     /* the same to an ExternalIP or LB IP: dropped */
#define WL_NP_STAT_CONFIRMED 13        /* a flow confirmed, moved from wl_np_pending to wl_np_ct */
#define WL_NP_STAT_UNCONFIRMED_EXPIRED 14 /* an unconfirmed flow found timed out (by its next packet or a port probe) */
#define WL_NP_STAT_SNAT_RECLAIMED 15   /* a masquerade port taken from an unconfirmed flow older than snat_reclaim_age */
#define WL_NP_STAT_HANDSHAKE_MISMATCH 16 /* a client ACK of a pending flow without the SYN-ACK's number: not confirmed */
#define WL_NP_STAT_EVICTED 17          /* a flow found without its other direction's entry: the LRU evicted it */
#define WL_NP_STAT_MAX 18
#define WL_NP_STAT_SLOTS 32

#ifndef WL_NO_MAP_DEFINITIONS
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_NP_CT_MAX);
	__uint(map_flags, WL_NP_CT_FLAGS);
	__type(key, struct wl_np_ct_key);
	__type(value, struct wl_np_ct_value);
} wl_np_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_NP_PENDING_MAX);
	__type(key, struct wl_np_ct_key);
	__type(value, struct wl_np_pending_value);
} wl_np_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_NP_AFFINITY_MAX);
	__type(key, struct wl_affinity_key);
	__type(value, struct wl_affinity_value);
} wl_np_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, WL_NP_RANGES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct wl_np_range_key);
	__type(value, struct wl_np_range_value);
} wl_np_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct wl_np_snat_value);
} wl_np_snat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, WL_NP_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} wl_np_stats SEC(".maps");
#endif /* WL_NO_MAP_DEFINITIONS */

#endif /* WIRELANE_NODEPORT_H */
