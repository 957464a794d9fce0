/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps the service data path shares between its BPF programs (bpf/sock_lb.bpf.c at the socket
 * layer, bpf/nodeport.bpf.c on tc) and the agent. src/dataplane/ebpf/layouts.ts states every struct
 * here member by member for the agent's encoders (test/dataplane/ebpf-layouts.test.ts compares it
 * with the BTF of the built objects: change both together); at load the agent also checks every
 * map's key and value sizes and refuses to run otherwise. Include after "vmlinux.h".
 *
 * Every key is a struct with explicit padding: hash maps compare raw key bytes, so a hole the
 * compiler filled with garbage would make a lookup miss silently. Writers zero every key and value
 * before filling it. Addresses are 16 bytes for both families, in network byte order: IPv4 in bytes
 * 0..3, bytes 4..15 zero. Ports are network byte order (__be16). Everything else is host order.
 *
 * Sharing: each map is pinned at <bpffs>/wirelane/<map name> (WL_PIN_DIR below; the agent may pick
 * another directory, the names inside stay). Every object that uses a map declares it from this
 * header and the agent points it at the pin before load (bpf_map__set_pin_path), so the kernel
 * holds one map for all of them. Sizes (max_entries) are set by the agent; the defaults are here.
 *
 * ---------------------------------------------------------------------------------------------
 * wl_services (HASH): one entry per service frontend; its backends are a range of wl_slots.
 *
 *   key {addr, port, protocol, family, scope} -> {first_slot, service_id, count, flags (WL_SVC_*),
 *   affinity_timeout (seconds, 0 = none), capacity}. Slot i (1..count) of the frontend is
 *   wl_slots[first_slot + i - 1]; the range holds `capacity` slots, so a frontend grows in place
 *   until it needs a bigger range.
 *
 *   scope WL_SCOPE_INTERNAL: what sockets on this node reach (sock_lb looks up only this scope)
 *     - ClusterIP:port            -> the internal endpoints (internalTrafficPolicy applied)
 *     - ExternalIP/LB IP:port     -> ALL cluster endpoints: kube-proxy's short-circuit, traffic
 *                                    from pods and the host to an external address ignores
 *                                    externalTrafficPolicy: Local
 *     - NodePort (wildcard addr)  -> all cluster endpoints, same reason
 *   scope WL_SCOPE_EXTERNAL: what traffic from outside the node reaches (tc looks up only this)
 *     - ExternalIP/LB IP:port     -> the external endpoints (externalTrafficPolicy applied)
 *     - NodePort (wildcard addr)  -> the external endpoints
 *
 *   NodePort: one entry per service port with addr all zero (the wildcard) and port = the node
 *   port, flag WL_SVC_NODEPORT. A program first checks that the destination is one of the node's
 *   NodePort addresses (wl_node_addrs), then looks up the wildcard key. Node addresses changing
 *   never rewrites services, and 10,000 NodePorts stay 10,000 entries.
 *
 *   count == 0: no endpoint. WL_SVC_NO_ENDPOINT_DROP tells the reader to drop (a Local policy rules
 *   every endpoint out), otherwise reject (the service has none at all). At the socket layer
 *   connect()/sendmsg() fail at once, with ECONNREFUSED for reject and EHOSTUNREACH for drop (a
 *   socket cannot be left hanging); tc answers a reject with a reset/ICMP and drops a drop.
 *
 *   Updates are safe for readers in flight: a new backend is written before any slot names it;
 *   slots past the count, or in a range no entry points at yet, are written before the entry that
 *   makes them visible (a hash update swaps the whole value); a slot within the count is only ever
 *   replaced by another live backend (one 32-bit store); slots past a shrunk count are cleared, a
 *   range given up is reused and a backend nothing names is cleared, only after the entries stop
 *   naming them (ranges in the next change). So a reader that sees count n finds live backends in
 *   slots 1..n, and a removed backend is in no slot <= count.
 *
 *   A remembered choice (affinity, a UDP socket's backend) stores (backend_id, slot); it is still
 *   valid when slot <= count and that slot still holds backend_id. No other map is needed to know
 *   that a backend left a service.
 *
 * wl_slots (ARRAY, mmapable): slot index -> backend_id (0: none). Ranges of it belong to
 *   wl_services entries. Memory-mapped by the agent, which writes it in place: a full sync of
 *   100,000 slots costs no syscall (as hash entries it cost ~40 ms of hash inserts).
 *
 * wl_backends (ARRAY, mmapable): backend_id -> {addr, port, family, flags (WL_BACKEND_LOCAL)}.
 *   Ids are shared by every service slot that names the same address:port (any protocol): the
 *   agent allocates them densely, never 0, and reuses freed ones. An unused id holds all zero
 *   (family 0): readers check the family. Written in place through the agent's mapping, like
 *   wl_slots.
 *
 * wl_node_addrs (HASH): {addr, family} -> flags. The addresses NodePorts are served on.
 *
 * wl_affinity (LRU_HASH): {client, service_id, kind, family} -> {backend_id, slot, last_used_ns}.
 *   kind WL_AFFINITY_NETNS:  client.netns_cookie = bpf_get_netns_cookie() (socket layer: one pod,
 *                            or the host, is one client, as Cilium does).
 *   kind WL_AFFINITY_ADDR:   client.addr = the client's address (tc path, ClientIP affinity).
 *   kind WL_AFFINITY_SOCKET: client.socket_cookie = bpf_get_socket_cookie(): an unconnected UDP
 *                            socket keeps the backend it was given for each service (no timeout;
 *                            the LRU evicts).
 *   An entry older than the service's affinity_timeout, or whose backend left the service, is
 *   replaced by a new choice. Unused bytes of client are zero.
 *   Per owner: a pod has one NETNS entry per sticky service, however many sockets it opens; a
 *   SOCKET entry goes when its socket is released (sock_lb's cgroup/sock_release, through
 *   wl_sock_owned); outside clients' choices are the tc path's own map (wl_np_affinity), written
 *   only for confirmed flows. So no pod and no flood from outside can churn the entries of others;
 *   what remains is the size (the agent's --affinity-entries).
 *
 * wl_sock_rev (LRU_HASH): {socket cookie, backend addr, backend port, family} -> the service
 *   address and port the socket asked for. Written at connect()/sendmsg(); read at recvmsg() (UDP
 *   replies come from the service address) and getpeername(). Keyed by backend too, because one
 *   unconnected UDP socket may talk to several services. Removed when the socket is released
 *   (cgroup/sock_release): a connected socket's entry by its peer, an unconnected one's through
 *   wl_sock_owned. So a pod churning sockets holds entries only for the sockets it keeps open, and
 *   cannot evict other pods' entries unless it keeps more open than the map holds (the agent's
 *   --sock-lb-entries); the LRU only evicts what a release could not name.
 *
 * wl_sock_owned (SK_STORAGE, sock_lb's own, pinned with the others): per unconnected UDP socket,
 *   the last WL_SOCK_OWNED_SLOTS {backend, service_id} it was sent to, i.e. the keys of its
 *   wl_sock_rev and WL_AFFINITY_SOCKET entries, for cgroup/sock_release to delete. The kernel frees
 *   it with the socket. A socket talking to more backends than that leaves the oldest to the LRU.
 *
 * wl_sock_stats (PERCPU_ARRAY, sock_lb's own, pinned with the others): connect()/sendmsg() calls
 *   to a service that the socket LB failed, by WL_SOCK_STAT_*; WL_SOCK_STAT_SLOTS of them, room for
 *   new ones. The agent sums the CPUs' values at each scrape (wirelane_sock_lb_refusals_total).
 *
 * wl_sock_term (HASH, not pinned; bpf/sock_term.bpf.c's own): {frontend, backend, port, family}
 *   -> 1. What a change left stale, for the iterator that ends connected UDP sockets: a socket
 *   whose wl_sock_rev entry names this frontend and port and whose peer is this backend. A zero
 *   frontend matches any frontend with that port (a NodePort on any node address); a zero
 *   backend any backend (the frontend itself went away).
 * ---------------------------------------------------------------------------------------------
 */
#ifndef WIRELANE_MAPS_H
#define WIRELANE_MAPS_H

/* Pins: <bpffs>/WL_PIN_DIR/<map name>; links of a program at <bpffs>/WL_PIN_DIR/links/<program>. */
#define WL_PIN_DIR "wirelane"
#define WL_PIN_LINKS_DIR "links"

/* Map names (also the pin file names; the kernel keeps 15 characters). */
#define WL_MAP_SERVICES "wl_services"
#define WL_MAP_SLOTS "wl_slots"
#define WL_MAP_BACKENDS "wl_backends"
#define WL_MAP_NODE_ADDRS "wl_node_addrs"
#define WL_MAP_AFFINITY "wl_affinity"
#define WL_MAP_SOCK_REV "wl_sock_rev"

/* Default sizes; the agent may resize before load (every object sharing a map must agree). A build
 * may set them with -D (the upgrade tests' fixture of an older map layout does). */
#ifndef WL_SERVICES_MAX
#define WL_SERVICES_MAX 131072
#endif
#ifndef WL_SLOTS_MAX
#define WL_SLOTS_MAX 1048576
#endif
#ifndef WL_BACKENDS_MAX
#define WL_BACKENDS_MAX 131072
#endif
#ifndef WL_NODE_ADDRS_MAX
#define WL_NODE_ADDRS_MAX 256
#endif
#ifndef WL_AFFINITY_MAX
#define WL_AFFINITY_MAX 65536
#endif
#ifndef WL_SOCK_REV_MAX
#define WL_SOCK_REV_MAX 65536
#endif
#ifndef WL_SOCK_TERM_MAX
#define WL_SOCK_TERM_MAX 4096
#endif

/* wl_service_key.family */
#define WL_FAMILY_IPV4 4
#define WL_FAMILY_IPV6 6

/* wl_service_key.scope */
#define WL_SCOPE_INTERNAL 0 /* from sockets on this node: ClusterIP, and the short-circuit for external addresses */
#define WL_SCOPE_EXTERNAL 1 /* from outside the node: NodePort, ExternalIP, LB IP */

/* wl_service_value.flags */
#define WL_SVC_NO_ENDPOINT_DROP (1 << 0) /* count == 0: drop; without it count == 0 means reject */
#define WL_SVC_LOCAL_ONLY (1 << 1)       /* externalTrafficPolicy Local (external scope): keep the client's source */
#define WL_SVC_AFFINITY (1 << 2)         /* ClientIP affinity for affinity_timeout seconds */
#define WL_SVC_NODEPORT (1 << 3)         /* the wildcard NodePort entry (addr all zero) */
#define WL_SVC_CLUSTER_IP (1 << 4)
#define WL_SVC_EXTERNAL_IP (1 << 5)
#define WL_SVC_LOAD_BALANCER (1 << 6)
#define WL_SVC_SOURCE_RANGES (1 << 7) /* LB IP with loadBalancerSourceRanges: the tc path filters sources */

/* wl_backend.flags */
#define WL_BACKEND_LOCAL (1 << 0) /* on this node */

/* wl_affinity_key.kind */
#define WL_AFFINITY_NETNS 1
#define WL_AFFINITY_ADDR 2
#define WL_AFFINITY_SOCKET 3

struct wl_service_key {
	__u8 addr[16];   /* the frontend address; all zero for the NodePort wildcard */
	__be16 port;     /* the service port, or the node port */
	__u8 protocol;   /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	__u8 family;     /* WL_FAMILY_* */
	__u8 scope;      /* WL_SCOPE_* */
	__u8 pad[3];
};
_Static_assert(sizeof(struct wl_service_key) == 24, "wl_service_key is 24 bytes");

struct wl_service_value {
	__u32 first_slot;        /* wl_slots index of slot 1 */
	__u32 service_id;        /* affinity, reverse translation */
	__u16 count;             /* backend slots 1..count */
	__u16 flags;             /* WL_SVC_* */
	__u32 affinity_timeout;  /* seconds; 0 = no affinity */
	__u16 capacity;          /* slots the range holds (>= count); the agent's, readers ignore it */
	__u16 pad;
};
_Static_assert(sizeof(struct wl_service_value) == 20, "wl_service_value is 20 bytes");

struct wl_backend {
	__u8 addr[16];
	__be16 port;
	__u8 family;  /* WL_FAMILY_* */
	__u8 flags;   /* WL_BACKEND_* */
};
_Static_assert(sizeof(struct wl_backend) == 20, "wl_backend is 20 bytes");

struct wl_node_addr_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};
_Static_assert(sizeof(struct wl_node_addr_key) == 20, "wl_node_addr_key is 20 bytes");

struct wl_node_addr_value {
	__u32 flags; /* none defined yet; 0 */
};
_Static_assert(sizeof(struct wl_node_addr_value) == 4, "wl_node_addr_value is 4 bytes");

union wl_affinity_client {
	__u64 netns_cookie;  /* WL_AFFINITY_NETNS */
	__u64 socket_cookie; /* WL_AFFINITY_SOCKET */
	__u8 addr[16];       /* WL_AFFINITY_ADDR */
};

struct wl_affinity_key {
	union wl_affinity_client client;
	__u32 service_id;
	__u8 kind;    /* WL_AFFINITY_* */
	__u8 family;  /* of the service */
	__u8 pad[2];
};
_Static_assert(sizeof(struct wl_affinity_key) == 24, "wl_affinity_key is 24 bytes");

struct wl_affinity_value {
	__u32 backend_id;
	__u16 slot;        /* where backend_id was when chosen: still there means still valid */
	__u16 pad;
	__u64 last_used_ns; /* bpf_ktime_get_ns() */
};
_Static_assert(sizeof(struct wl_affinity_value) == 16, "wl_affinity_value is 16 bytes");

struct wl_sock_rev_key {
	__u64 cookie;     /* bpf_get_socket_cookie() */
	__u8 addr[16];    /* the backend */
	__be16 port;
	__u8 family;
	__u8 pad[5];
};
_Static_assert(sizeof(struct wl_sock_rev_key) == 32, "wl_sock_rev_key is 32 bytes");

struct wl_sock_rev_value {
	__u8 addr[16];    /* the service frontend the socket asked for */
	__be16 port;
	__u8 family;
	__u8 pad;
	__u32 service_id;
};
_Static_assert(sizeof(struct wl_sock_rev_value) == 24, "wl_sock_rev_value is 24 bytes");

/* wl_sock_stats slots (never renumbered: counters survive an upgrade by slot) */
#define WL_MAP_SOCK_STATS "wl_sock_stats"
#define WL_SOCK_STAT_NO_ENDPOINT 0       /* the service has no endpoint: ECONNREFUSED */
#define WL_SOCK_STAT_NO_LOCAL_ENDPOINT 1 /* a Local policy left none for this node: EHOSTUNREACH */
#define WL_SOCK_STAT_NO_BACKEND 2        /* a slot named no usable backend (mid-change): ECONNREFUSED */
#define WL_SOCK_STAT_SLOTS 8

#define WL_SOCK_OWNED_SLOTS 8

struct wl_sock_owned_entry {
	__u8 addr[16];     /* the backend, as in wl_sock_rev_key */
	__be16 port;
	__u8 family;       /* 0: unused slot */
	__u8 pad;
	__u32 service_id;  /* its WL_AFFINITY_SOCKET entry */
};
_Static_assert(sizeof(struct wl_sock_owned_entry) == 24, "wl_sock_owned_entry is 24 bytes");

struct wl_sock_owned {
	__u32 next;        /* the slot the next entry takes, modulo WL_SOCK_OWNED_SLOTS */
	__u32 pad;
	struct wl_sock_owned_entry entries[WL_SOCK_OWNED_SLOTS];
};
_Static_assert(sizeof(struct wl_sock_owned) == 200, "wl_sock_owned is 200 bytes");

struct wl_sock_term_key {
	__u8 frontend[16];
	__u8 backend[16];
	__be16 port;      /* the frontend's */
	__u8 family;
	__u8 pad;
};
_Static_assert(sizeof(struct wl_sock_term_key) == 36, "wl_sock_term_key is 36 bytes");

/*
 * The map definitions, for an object that includes this header (libbpf matches them to the pins by
 * name, type, sizes and flags, so every object must declare them exactly like this). Define
 * WL_NO_MAP_DEFINITIONS before including to get only the layouts.
 */
#ifndef WL_NO_MAP_DEFINITIONS
/* Preallocated: inserts cost about half of what they do with BPF_F_NO_PREALLOC. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_SERVICES_MAX);
	__type(key, struct wl_service_key);
	__type(value, struct wl_service_value);
} wl_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WL_SLOTS_MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} wl_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WL_BACKENDS_MAX);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct wl_backend);
} wl_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, WL_NODE_ADDRS_MAX);
	__type(key, struct wl_node_addr_key);
	__type(value, struct wl_node_addr_value);
} wl_node_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_AFFINITY_MAX);
	__type(key, struct wl_affinity_key);
	__type(value, struct wl_affinity_value);
} wl_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, WL_SOCK_REV_MAX);
	__type(key, struct wl_sock_rev_key);
	__type(value, struct wl_sock_rev_value);
} wl_sock_rev SEC(".maps");

/* The backend in slot `slot` (1..count) of a service whose slots start at `first_slot`; 0: none. */
static __always_inline __u32 wl_backend_in_slot(__u32 first_slot, __u16 slot)
{
	__u32 index = first_slot + slot - 1;
	__u32 *id = bpf_map_lookup_elem(&wl_slots, &index);
	return id ? *id : 0;
}
#endif /* WL_NO_MAP_DEFINITIONS */

#endif /* WIRELANE_MAPS_H */
