// endpoints.kubernetes.io/last-change-trigger-time: Go's RFC3339Nano, decoded and checked; a bad
// value costs only the latency metric, never the slice.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ParseError } from '../../src/model/ip.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import type { KubeObject } from '../../src/sources/objects.js';
import type { Problem } from '../../src/sources/problem.js';
import { decodeServiceInput } from '../../src/sources/service-input.js';
import { LAST_CHANGE_TRIGGER_TIME, parseTriggerTime } from '../../src/sources/trigger-time.js';

describe('parseTriggerTime', () => {
  const valid: [string, string][] = [
    // What the EndpointSlice controller writes (UTC, no fraction when the time has none).
    ['2026-12-02T14:03:07Z', '2026-12-02T14:03:07.000Z'],
    ['2026-12-02T14:03:07.5Z', '2026-12-02T14:03:07.500Z'],
    ['2026-12-02T14:03:07.123456789Z', '2026-12-02T14:03:07.123Z'],
    ['2026-12-02T15:03:07+01:00', '2026-12-02T14:03:07.000Z'],
    ['2026-12-02T08:33:07.25-05:30', '2026-12-02T14:03:07.250Z'],
    ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
    ['2000-02-29T23:59:59Z', '2000-02-29T23:59:59.000Z'],
    ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000Z'],
  ];
  for (const [text, iso] of valid) {
    test(`${text} is ${iso}`, () => assert.equal(new Date(parseTriggerTime(text)).toISOString(), iso));
  }

  const invalid = [
    '',
    'yesterday',
    '1733148187', // Unix seconds
    '2026-12-02 14:03:07Z', // a space for the T
    '2026-12-02T14:03:07', // no zone
    '2026-12-02T14:03Z', // no seconds
    '2026-12-02T14:03:07.Z', // an empty fraction
    '2026-12-02T14:03:07.1234567891Z', // ten digits
    '2026-12-02t14:03:07z',
    '2026-13-02T14:03:07Z',
    '2026-00-02T14:03:07Z',
    '2026-02-29T14:03:07Z', // not a leap year
    '1900-02-29T14:03:07Z',
    '2026-04-31T14:03:07Z',
    '2026-12-00T14:03:07Z',
    '2026-12-02T24:00:00Z',
    '2026-12-02T14:60:07Z',
    '2026-12-02T14:03:60Z', // Go refuses leap seconds too
    '2026-12-02T14:03:07+24:00',
    '2026-12-02T14:03:07+01:60',
    '2026-12-02T14:03:07+0100',
    ' 2026-12-02T14:03:07Z',
    '2026-12-02T14:03:07Z\n',
    '+2026-12-02T14:03:07Z',
  ];
  for (const text of invalid) {
    test(`${JSON.stringify(text)} is refused`, () => assert.throws(() => parseTriggerTime(text), ParseError));
  }
});

function slice(annotations: Record<string, unknown> | undefined): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'web-abc', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'web' }, ...(annotations && { annotations }) },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: [{ addresses: ['10.244.1.5'] }],
  } as KubeObject;
}

describe('the trigger time of a slice', () => {
  test('decoded into the slice', () => {
    const problems: Problem[] = [];
    const s = decodeEndpointSlice(slice({ [LAST_CHANGE_TRIGGER_TIME]: '2026-12-02T14:03:07Z' }), (p) => problems.push(p));
    assert.equal(s?.triggeredAt, Date.parse('2026-12-02T14:03:07Z'));
    assert.deepEqual(problems, []);
  });

  test('absent: no time, no problem', () => {
    const problems: Problem[] = [];
    const s = decodeEndpointSlice(slice(undefined), (p) => problems.push(p));
    assert.equal(s?.triggeredAt, undefined);
    assert.ok(s && !('triggeredAt' in s));
    assert.deepEqual(problems, []);
  });

  for (const bad of ['not a time', 1733148187, null]) {
    test(`${JSON.stringify(bad)}: the slice is kept whole, the annotation reported once`, () => {
      const decoded = decodeServiceInput([{ kind: 'EndpointSlice', object: slice({ [LAST_CHANGE_TRIGGER_TIME]: bad }) }]);
      assert.equal(decoded.slices.length, 1);
      assert.equal(decoded.slices[0]?.triggeredAt, undefined);
      assert.equal(decoded.slices[0]?.endpoints.length, 1);
      assert.deepEqual(decoded.problems.map((p) => [p.kind, p.object, p.field]), [['EndpointSlice', 'shop/web-abc', `metadata.annotations[${LAST_CHANGE_TRIGGER_TIME}]`]]);
      assert.match(decoded.problems[0]?.message ?? '', /not used for wirelane_network_programming_duration_seconds/);
    });
  }
});
