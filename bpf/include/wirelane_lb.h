/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What both load balancers do alike: the socket layer's (bpf/sock_lb.bpf.c) and tc's
 * (bpf/nodeport.bpf.c). Include after "wirelane_maps.h", with its map definitions.
 */
#ifndef WIRELANE_LB_H
#define WIRELANE_LB_H

/* Two 16-byte map addresses are the same (clang has no inline memcmp for BPF). */
static __always_inline bool wl_addr_equal(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;
	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/*
 * A remembered choice (affinity, a UDP socket's or a flow's backend) of a service whose slots
 * start at first_slot and number count is still valid while its slot is within the count and
 * still holds backend_id: a backend that left the service is in no slot <= count (wirelane_maps.h).
 */
static __always_inline bool wl_remembered_backend_valid(__u32 first_slot, __u16 count, __u32 backend_id, __u16 slot)
{
	if (slot == 0 || slot > count)
		return false;
	return wl_backend_in_slot(first_slot, slot) == backend_id;
}

#endif /* WIRELANE_LB_H */
