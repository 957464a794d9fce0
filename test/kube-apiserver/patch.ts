// The patch formats a Kubernetes server accepts on PATCH, by Content-Type.
import { canonicalJson } from './store.js';
import { StatusError } from './status.js';

export type PatchType = 'json' | 'merge' | 'strategic';

const patchTypes: Readonly<Record<string, PatchType>> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  // Strategic merge differs from a merge patch only for lists with patch-merge keys (containers,
  // ports, ...) and `$patch` directives; for the maps the agent patches (annotations, labels) the
  // two are the same, so this server treats it as a merge patch.
  'application/strategic-merge-patch+json': 'strategic',
};

export function patchTypeOf(contentType: string | undefined): PatchType {
  const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const type = patchTypes[mediaType];
  if (!type) {
    throw new StatusError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format: "${mediaType}" (this test server accepts ${Object.keys(patchTypes).join(', ')})`,
    );
  }
  return type;
}

export function applyPatch(type: PatchType, target: unknown, patch: unknown): unknown {
  return type === 'json' ? applyJsonPatch(target, patch) : applyMergePatch(target, patch);
}

type JsonObject = { [key: string]: unknown };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// RFC 7386: objects merge key by key, null removes a key, anything else replaces.
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

// RFC 6902. A failed operation is a 422, as the real server answers; a patch that is not a list
// of operations is a 400.
export function applyJsonPatch(target: unknown, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    throw new StatusError(400, 'BadRequest', 'json patch: the body is not an array of operations');
  }
  let doc = structuredClone(target);
  patch.forEach((operation: unknown, index) => {
    if (!isObject(operation) || typeof operation.op !== 'string' || typeof operation.path !== 'string') {
      throw new StatusError(400, 'BadRequest', `json patch: operation ${index} needs string "op" and "path"`);
    }
    const { op, path } = operation;
    const fail = (why: string): never => {
      throw new StatusError(422, 'Invalid', `json patch: operation ${index} (${op} ${path}): ${why}`);
    };
    const tokens = parsePointer(path, fail);
    const valueOf = (): unknown => ('value' in operation ? structuredClone(operation.value) : fail('"value" is missing'));
    const fromTokens = (): string[] =>
      typeof operation.from === 'string' ? parsePointer(operation.from, fail) : fail('"from" is missing');
    switch (op) {
      case 'add':
        doc = addAt(doc, tokens, valueOf(), fail);
        break;
      case 'remove':
        doc = removeAt(doc, tokens, fail);
        break;
      case 'replace':
        doc = addAt(removeAt(doc, tokens, fail), tokens, valueOf(), fail);
        break;
      case 'test':
        if (canonicalJson(valueAt(doc, tokens, fail)) !== canonicalJson(valueOf())) fail('value differs');
        break;
      case 'move': {
        const from = fromTokens();
        const moved = valueAt(doc, from, fail);
        doc = addAt(removeAt(doc, from, fail), tokens, moved, fail);
        break;
      }
      case 'copy':
        doc = addAt(doc, tokens, structuredClone(valueAt(doc, fromTokens(), fail)), fail);
        break;
      default:
        throw new StatusError(400, 'BadRequest', `json patch: operation ${index}: unknown op "${op}"`);
    }
  });
  return doc;
}

type Fail = (why: string) => never;

// RFC 6901: "/a/b~1c" is ["a", "b/c"]; ~1 is unescaped before ~0 so "~01" stays "~1".
function parsePointer(pointer: string, fail: Fail): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) fail(`"${pointer}" is not a JSON pointer`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function parentOf(doc: unknown, tokens: readonly string[], fail: Fail): { parent: unknown; last: string } {
  const last = tokens[tokens.length - 1];
  if (last === undefined) return fail('the document root has no parent');
  return { parent: valueAt(doc, tokens.slice(0, -1), fail), last };
}

function valueAt(doc: unknown, tokens: readonly string[], fail: Fail): unknown {
  let node = doc;
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[arrayIndex(token, node.length - 1, fail)];
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token];
    else return fail(`"${token}" not found`);
  }
  return node;
}

function arrayIndex(token: string, max: number, fail: Fail): number {
  const index = Number(token);
  if (!/^(0|[1-9]\d*)$/.test(token) || index > max) fail(`"${token}" is not an index in 0..${max}`);
  return index;
}

// Mutates and returns doc (which is already a private copy), or returns value for the root.
function addAt(doc: unknown, tokens: readonly string[], value: unknown, fail: Fail): unknown {
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, fail);
  if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : arrayIndex(last, parent.length, fail), 0, value);
  else if (isObject(parent)) parent[last] = value;
  else fail('the parent is not an object or array');
  return doc;
}

function removeAt(doc: unknown, tokens: readonly string[], fail: Fail): unknown {
  if (tokens.length === 0) return null;
  const { parent, last } = parentOf(doc, tokens, fail);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length - 1, fail), 1);
  else if (isObject(parent) && Object.hasOwn(parent, last)) delete parent[last];
  else fail(`"${last}" not found`);
  return doc;
}
