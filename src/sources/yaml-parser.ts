// The YAML parser, loaded only for input that needs it: a JSON cluster file and an in-cluster
// Kubernetes source never do, and loading it costs start-up time and memory (50 ms and 8 MiB RSS
// measured for a cluster file).
import { createRequire } from 'node:module';

let loaded: typeof import('yaml') | undefined;

export function yamlParser(): typeof import('yaml') {
  return (loaded ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
}
