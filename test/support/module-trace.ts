// What a Node process loads: node flags that record the URL of every module it loads into a file,
// through a load hook registered before the program's own (so it sees what their resolve hooks
// chose). Plain JavaScript in data: URLs, so it works for a dist/ build run without tsx.
import { readFile } from 'node:fs/promises';

const HOOKS = `import { appendFileSync } from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function load(url, context, next) { appendFileSync(file, url + '\\n'); return next(url, context); }`;

/** `node` flags (before the script) that append each loaded module's URL to `file`, one a line. */
export function moduleTraceFlags(file: string): string[] {
  const entry = `import { register } from 'node:module';
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(HOOKS)}`)}, { data: { file: ${JSON.stringify(file)} } });`;
  return ['--import', `data:text/javascript,${encodeURIComponent(entry)}`];
}

/** The module URLs a traced process has loaded so far. */
export async function tracedModules(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8')).split('\n').filter((line) => line !== '');
}

/** Of `modules`, those of client-node's generated API beyond what its KubeConfig needs (the shim's). */
export function generatedApiModules(modules: readonly string[]): string[] {
  return modules.filter((url) => /\/@kubernetes\/client-node\/dist\/gen\/(index\.js|apis\/|models\/|types\/)/.test(url));
}

/** Of `modules`, those of @kubernetes/client-node (any of it). */
export function clientNodeModules(modules: readonly string[]): string[] {
  return modules.filter((url) => url.includes('/@kubernetes/client-node/'));
}
