#!/usr/bin/env -S node --max-semi-space-size=8
// The installed entry point runs the compiled CLI (npm run build, or the setup script, makes dist/).
// The flag bounds V8's young generation for the agent: a resync with nothing changed allocates next
// to nothing now, and a young generation of 16–32 MiB semi-spaces (the flags before) stayed
// committed at 40–60 MiB of RSS for syncs that are rare; a first full sync at 10,000 services
// scavenges more with 8 (docs/benchmarks.md, agent memory). bench/ebpf-services.ts and
// bench/agent-memory.ts read the flags from this line.
import '../dist/cli/wirelane.js';
