// `wirelane --version`: the version in package.json, which also tags the image (scripts/build-image.mjs).
import { readFileSync } from 'node:fs';

/** Read from package.json two levels up: src/cli/ under tsx, dist/cli/ compiled, /opt/wirelane/dist/cli/ in the image. */
export function wirelaneVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error('package.json has no version');
  return pkg.version;
}
