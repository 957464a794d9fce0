// The overlap rules (src/mesh/claims.ts) on 10,000 generated claim sets each, drawn from a small
// address space so that prefixes nest and collide often: every prefix is kept or rejected once, what
// is kept overlaps nothing reserved and nothing another claimant kept, and a claim's outcome does not
// depend on claims after it (Peers) or on the order of the claims (allowed-location IPs).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Claim, resolveContestedClaims, resolveOrderedClaims, type ResolvedClaims, WIDEST_CLAIM } from '../../src/mesh/claims.js';
import { type Cidr, formatCidr, networkOf, overlaps, parseCidr } from '../../src/model/ip.js';
import { fc } from './setup.js';

const prefix = fc.oneof(
  { weight: 9, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 4, max: 28 })).map(([b, c, bits]) => parseCidr(`10.${b}.${c * 16}.0/${bits}`)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 8, max: 64 })).map(([b, bits]) => parseCidr(`fd00:${b}::/${bits}`)) },
);
const claims = fc.array(fc.array(prefix, { maxLength: 4 }), { maxLength: 6 }).map((lists) =>
  lists.map((prefixes, i): Claim => ({ kind: 'Peer', name: `p${i}`, field: 'spec.allowedIPs', prefixes, group: `g${i % 3}` })),
);
const reserved = fc.array(prefix, { maxLength: 3 }).map((list) => list.map((p, i) => ({ prefix: p, holder: `r${i}` })));
const allowWide = fc.boolean();

const keyOf = (c: Cidr) => formatCidr(networkOf(c));

/** Each claim's distinct prefixes are its kept ones and its rejected ones, each once. */
function assertAccounted(input: readonly Claim[], out: ResolvedClaims): void {
  input.forEach((claim, i) => {
    const given = [...new Set(claim.prefixes.map(keyOf))].sort();
    const kept = (out.kept[i] ?? []).map(keyOf);
    const rejected = out.rejected.filter((r) => r.name === claim.name).map((r) => keyOf(r.prefix));
    assert.deepEqual([...kept, ...rejected].sort(), given, claim.name);
  });
}

function assertNothingShared(input: readonly Claim[], out: ResolvedClaims, apart: (a: number, b: number) => boolean, held: readonly Cidr[], allow: boolean): void {
  out.kept.forEach((list, i) =>
    list.forEach((p) => {
      assert.ok(allow || p.bits >= WIDEST_CLAIM[p.family], `${keyOf(p)} is too wide`);
      for (const h of held) assert.ok(!overlaps(h, p), `${input[i]?.name} kept ${keyOf(p)}, which overlaps reserved ${keyOf(h)}`);
      out.kept.forEach((other, j) => {
        if (apart(i, j)) for (const q of other) assert.ok(!overlaps(p, q), `${keyOf(p)} of ${i} and ${keyOf(q)} of ${j} both kept`);
      });
    }),
  );
}

test('Peers: every prefix accounted for; kept ones overlap nothing reserved or kept by another Peer; later Peers change nothing of earlier ones', () => {
  fc.assert(
    fc.property(claims, reserved, allowWide, (input, held, allow) => {
      const rules = { reserved: held, allowWide: allow };
      const out = resolveOrderedClaims(input, rules);
      assertAccounted(input, out);
      assertNothingShared(input, out, (a, b) => a !== b, held.map((h) => h.prefix), allow);
      for (let k = 0; k < input.length; k++) {
        assert.deepEqual(resolveOrderedClaims(input.slice(0, k), rules).kept, out.kept.slice(0, k), `the first ${k} Peers`);
      }
    }),
  );
});

test('allowed-location IPs: every prefix accounted for; kept ones overlap nothing reserved, taken or kept by another group; the order of claims does not matter', () => {
  fc.assert(
    fc.property(claims, reserved, reserved, allowWide, fc.infiniteStream(fc.integer()), (input, held, taken, allow, randoms) => {
      const rules = { reserved: held, allowWide: allow };
      const out = resolveContestedClaims(input, rules, taken);
      assertAccounted(input, out);
      assertNothingShared(input, out, (a, b) => input[a]?.group !== input[b]?.group, [...held, ...taken].map((h) => h.prefix), allow);
      // Shuffled, each claim keeps the same prefixes.
      const order = input.map((_, i) => i).sort(() => (randoms.next().value as number) % 3 - 1);
      const shuffled = resolveContestedClaims(order.map((i) => input[i] as Claim), rules, taken);
      order.forEach((i, at) => assert.deepEqual((shuffled.kept[at] ?? []).map(keyOf), (out.kept[i] ?? []).map(keyOf), `claim ${i} after shuffling`));
    }),
  );
});
