// The eBPF service data path: socket-level load balancing (sock_lb.bpf.c) over the shared maps of
// bpf/include/wirelane_maps.h, and the probe that tells whether this host can run it.
export * from './codec.js';
export { EbpfServiceProxy, EbpfStartError, defaultBpffsDir, type EbpfServiceProxyOptions, type EbpfServiceProxyReport, type NorthSouthDatapath, type NorthSouthOptions } from './ebpf-service-proxy.js';
export { frontendsOf, frontendIdOf, type BackendSet, type DesiredFrontend } from './frontends.js';
export { MapWrites, ServiceTable, assignSlots, plainMemory, MAX_BACKENDS, type PortChange, type TableMemory } from './service-table.js';
export { SlotRanges, capacityFor } from './slot-ranges.js';
export { SOCK_LB_PROGRAMS, SockLb, SockLbStartError, linkPinPath, mapPinPath, removeSockLbPins, type SockLbOptions } from './sock-lb.js';
export { probeEbpfSupport, type EbpfCheck, type EbpfSupport } from './support.js';
