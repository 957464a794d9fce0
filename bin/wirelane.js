#!/usr/bin/env -S node --min-semi-space-size=16 --max-semi-space-size=32
// The installed entry point runs the compiled CLI (npm run build, or the setup script, makes dist/).
// The flags size V8's young generation for the agent: a full service sync at 10,000 services
// allocates over 9 MB, nearly all of it live; from Node's default (1 MB, grown scavenge by
// scavenge, shrunk again after a full GC) much of the sync went to scavenges and to first touches
// of fresh pages (docs/benchmarks.md). bench/ebpf-services.ts reads the flags from this line.
import '../dist/cli/wirelane.js';
