#!/usr/bin/env -S node --max-semi-space-size=8 --heap-growing-percent=25
// The installed entry point runs the compiled CLI (npm run build, or the setup script, makes dist/).
// The flags bound V8's heap for the agent (docs/benchmarks.md, agent memory):
// - --max-semi-space-size=8: a resync with nothing changed allocates next to nothing, and a young
//   generation of 16–32 MiB semi-spaces (the flags before) stayed committed at 40–60 MiB of RSS for
//   syncs that are rare; a first full sync at 10,000 services scavenges more with 8, for no longer.
// - --heap-growing-percent=25: the old generation is collected once it is 25% above what the last
//   full collection kept. V8's own factor (up to 4×) let the garbage of a churn (objects replaced as
//   they change) pile up: at 10,000 services the heap in use went from 165 to 339 MiB and the RSS
//   stayed there, while heap snapshots (which collect first) before and after a churn found the
//   same live heap. With the flag the RSS after the churn stays within 10% of before.
// bench/ebpf-services.ts and bench/agent-memory.ts read the flags from this line.
import '../dist/cli/wirelane.js';
