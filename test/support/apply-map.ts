// A service map applied to a proxy as the service reconciler applies it: through one change tracker
// per proxy, advanced only by an apply that succeeds.
import type { ServiceMap } from '../../src/model/service.js';
import { type ServiceChanges, ServiceChangeTracker } from '../../src/services/changes.js';

const trackers = new WeakMap<object, ServiceChangeTracker>();

export function applyMap<R>(proxy: { apply(changes: ServiceChanges): Promise<R> }, map: ServiceMap): Promise<R> {
  let tracker = trackers.get(proxy);
  if (tracker === undefined) {
    tracker = new ServiceChangeTracker();
    trackers.set(proxy, tracker);
  }
  return tracker.track(map, (changes) => proxy.apply(changes));
}
