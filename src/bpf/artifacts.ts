// Where the build (scripts/setup.mjs) puts the addon and the BPF objects. The paths are relative to
// the repository root, which is two levels above this file in src/bpf and in dist/bpf alike.
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** build/Release/wirelane_bpf.node */
export const ADDON_PATH = `${root}build/Release/wirelane_bpf.node`;

/**
 * The compiled form of bpf/NAME.bpf.c: build/bpf/NAME.bpf.o, or NAME.bpf.o in the directory
 * WIRELANE_BPF_OBJECTS names (objects installed elsewhere; the upgrade tests run an agent of an
 * older build this way).
 */
export function bpfObjectPath(name: string): string {
  const dir = process.env['WIRELANE_BPF_OBJECTS'];
  return dir ? `${dir.replace(/\/+$/, '')}/${name}.bpf.o` : `${root}build/bpf/${name}.bpf.o`;
}

/** The compiled form of test/fixtures/bpf/NAME.bpf.c: build/bpf/fixtures/NAME.bpf.o. */
export function bpfFixturePath(name: string): string {
  return `${root}build/bpf/fixtures/${name}.bpf.o`;
}

/** A set of fixture objects, test/fixtures/bpf/SET/*.bpf.c compiled: build/bpf/fixtures/SET. */
export function bpfFixtureDir(set: string): string {
  return `${root}build/bpf/fixtures/${set}`;
}
