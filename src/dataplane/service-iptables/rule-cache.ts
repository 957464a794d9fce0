// The service map's iptables rules, kept between applies: only the service ports a change names are
// generated again (kube-proxy's partial sync skips unchanged services the same way). Generating all
// 10,000 ports took 0.25–1.5 s, more than the rest of a one-endpoint change; the shared chains are
// still assembled from every port's parts, in map order, so the result equals computeServiceRules.
import type { Family } from '../../model/ip.js';
import type { ServiceChanges } from '../../services/changes.js';
import type { DesiredRules, FamilyRules } from '../iptables/ruleset.js';
import { assembleFamilyRules, familyContext, type PortRules, servicePortRules } from './rules.js';

const FAMILIES: readonly Family[] = [4, 6];

type PortParts = Readonly<Record<Family, PortRules | undefined>>;

export class ServiceRuleCache {
  /** Each service port's parts, by servicePortKey, as of the last `rulesFor`. */
  #ports = new Map<string, PortParts>();
  /** The last map and its rules: a resync with nothing changed hands the same rules on (IptablesChains then plans nothing). */
  #last: { readonly map: ServiceChanges['map']; readonly rules: DesiredRules } | undefined;

  /** The rules of `changes.map`, generating only the ports in `changes.updated` (all of them after a map-wide change). */
  rulesFor(changes: ServiceChanges): DesiredRules {
    const { map, keys } = changes;
    const unchanged = !changes.full && changes.updated.length === 0 && changes.removed.length === 0 && !Object.values(changes.mapFields).some(Boolean);
    if (unchanged && this.#last?.map === map) return this.#last.rules;
    const contexts = FAMILIES.map((family) => familyContext(map, family));
    // A map-wide field feeds every port's rules (cluster CIDRs, node-port addresses).
    if (changes.full || Object.values(changes.mapFields).some(Boolean)) this.#ports.clear();
    for (const key of changes.removed) this.#ports.delete(key);
    for (const i of changes.updated) this.#ports.delete(keys[i]!);
    const parts: Record<Family, (PortRules | undefined)[]> = { 4: [], 6: [] };
    map.servicePorts.forEach((port, i) => {
      const key = keys[i]!;
      let cached = this.#ports.get(key);
      if (cached === undefined) {
        cached = { 4: servicePortRules(contexts[0]!, port), 6: servicePortRules(contexts[1]!, port) };
        this.#ports.set(key, cached);
      }
      parts[4].push(cached[4]);
      parts[6].push(cached[6]);
    });
    const desired: Partial<Record<Family, FamilyRules>> = {};
    FAMILIES.forEach((family, f) => {
      const rules = assembleFamilyRules(contexts[f]!, parts[family]);
      if (rules !== undefined) desired[family] = rules;
    });
    this.#last = { map, rules: desired };
    return desired;
  }

  /** After an apply that failed: the next one generates every port again. */
  forget(): void {
    this.#ports.clear();
    this.#last = undefined;
  }
}
