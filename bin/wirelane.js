#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2 --heap-growing-percent=10
// The installed entry point runs the compiled CLI (npm run build, or the setup script, makes dist/).
// The flags bound the agent's memory (docs/benchmarks.md, agent memory):
// - MALLOC_ARENA_MAX=2: glibc gives each thread that mallocs (V8's GC and compiler threads, libuv's
//   pool) an arena of its own, up to 8 per core, and keeps what each freed: two arenas held 7–11 MiB
//   less at 10,000 services, for an agent whose JavaScript runs on one thread.
// - --max-semi-space-size=2: a resync with nothing changed allocates next to nothing, and a larger
//   young generation stays committed for syncs that are rare (8 MiB semi-spaces: 6 MiB more RSS, 16–32
//   MiB: 40–60 MiB more); a first full sync at 10,000 services scavenges more, for no more CPU.
// - --heap-growing-percent=10: the old generation is collected once it is 10% above what the last
//   full collection kept. V8's own factor (up to 4×) let the garbage of a churn (objects replaced as
//   they change) pile up: at 10,000 services the heap in use went from 165 to 339 MiB and the RSS
//   stayed there, while heap snapshots (which collect first) before and after a churn found the
//   same live heap. 25% kept the RSS after a churn within 10% of before; 10% is 5–7 MiB less idle at
//   10,000 services, for no more CPU in the first sync (an idle resync allocates next to nothing).
// bench/ebpf-services.ts and bench/agent-memory.ts read the flags (and the environment) from this line.
import '../dist/cli/wirelane.js';
