// Maps a request path onto a resource, the way the API server's REST paths are laid out:
//   /api/v1[/namespaces/{ns}]/{resource}[/{name}]
//   /apis/{group}/{version}[/namespaces/{ns}]/{resource}[/{name}]
import { type ResourceType, findResourceType } from './resources.js';
import { StatusError } from './status.js';

export interface Route {
  readonly type: ResourceType;
  readonly namespace?: string; // set only for a namespaced path
  readonly name?: string;
}

export function routeOf(pathname: string): Route {
  const segments = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string | undefined;
  let version: string | undefined;
  let rest: string[];
  if (segments[0] === 'api') [, version, ...rest] = segments;
  else if (segments[0] === 'apis') [, group, version, ...rest] = segments;
  else throw unknownPath(pathname);
  if (version === undefined || (segments[0] === 'apis' && group === undefined)) throw unknownPath(pathname);

  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) [, namespace, ...rest] = rest;
  const [plural, name, subresource] = rest;
  const type = plural === undefined ? undefined : findResourceType(group ?? '', version, plural);
  if (!type || subresource !== undefined || (namespace !== undefined && !type.namespaced)) throw unknownPath(pathname);
  return { type, ...(namespace !== undefined ? { namespace } : {}), ...(name !== undefined ? { name } : {}) };
}

function unknownPath(pathname: string): StatusError {
  return new StatusError(404, 'NotFound', `the server could not find the requested resource (${pathname})`);
}
