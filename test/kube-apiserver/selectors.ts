// Label and field selectors as LIST and WATCH take them (kube-proxy, for one, watches Services
// with `!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`).
import type { KubeObject } from './store.js';
import { StatusError } from './status.js';

export type ObjectFilter = (object: KubeObject) => boolean;

export function parseLabelSelector(text: string): ObjectFilter {
  const requirements = splitRequirements(text).map((r) => parseLabelRequirement(r, text));
  return (object) => {
    const labels = object.metadata.labels ?? {};
    return requirements.every((matches) => matches(labels));
  };
}

type LabelRequirement = (labels: Readonly<Record<string, string>>) => boolean;

function parseLabelRequirement(requirement: string, whole: string): LabelRequirement {
  const set = /^([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(requirement);
  if (set) {
    const [, key = '', operator, list = ''] = set;
    const values = new Set(list.split(',').map((v) => v.trim()));
    return operator === 'in'
      ? (labels) => labels[key] !== undefined && values.has(labels[key])
      : (labels) => labels[key] === undefined || !values.has(labels[key]);
  }
  const compare = /^([^\s!=,()]+)\s*(==|=|!=)\s*([^\s!=,()]*)$/.exec(requirement);
  if (compare) {
    const [, key = '', operator, value] = compare;
    return operator === '!=' ? (labels) => labels[key] !== value : (labels) => labels[key] === value;
  }
  const exists = /^(!?)\s*([^\s!=,()]+)$/.exec(requirement);
  if (exists) {
    const [, not, key = ''] = exists;
    return not ? (labels) => labels[key] === undefined : (labels) => labels[key] !== undefined;
  }
  throw new StatusError(400, 'BadRequest', `labelSelector "${whole}": cannot parse requirement "${requirement}"`);
}

// The fields every resource supports; real servers add a few per type, which nothing here needs.
const selectableFields: Readonly<Record<string, (object: KubeObject) => string>> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace ?? '',
};

export function parseFieldSelector(text: string): ObjectFilter {
  const requirements = splitRequirements(text).map((requirement): ObjectFilter => {
    const match = /^([^!=]+?)\s*(==|=|!=)\s*(.*)$/.exec(requirement);
    if (!match) throw new StatusError(400, 'BadRequest', `fieldSelector "${text}": cannot parse requirement "${requirement}"`);
    const [, field = '', operator, value] = match;
    const read = selectableFields[field];
    if (!read) throw new StatusError(400, 'BadRequest', `fieldSelector "${text}": field label not supported: ${field}`);
    return operator === '!=' ? (o) => read(o) !== value : (o) => read(o) === value;
  });
  return (object) => requirements.every((matches) => matches(object));
}

// Commas separate requirements except inside the parentheses of `in (a,b)`.
function splitRequirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth += 1;
    if (char === ')') depth -= 1;
    if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else current += char;
  }
  parts.push(current);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}
