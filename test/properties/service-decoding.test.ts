// Properties of Service and EndpointSlice decoding (src/sources/service.ts, endpoint-slice.ts), of the
// service loop (decodeServiceInput) and of the service map computed from what it decodes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIp } from '../../src/model/ip.js';
import { PROTOCOLS } from '../../src/model/service.js';
import { SERVICE_TYPES } from '../../src/services/input.js';
import { PROXY_NAME, computeServiceMap } from '../../src/services/service-map.js';
import { decodeEndpointSlice } from '../../src/sources/endpoint-slice.js';
import type { KubeObject } from '../../src/sources/objects.js';
import type { Problem } from '../../src/sources/problem.js';
import { type DecodedServiceInput, decodeServiceInput } from '../../src/sources/service-input.js';
import { decodeService } from '../../src/sources/service.js';
import type { SourceObject } from '../../src/sources/source.js';
import { assertServiceInputAccounted, decodeAlone, rejectionOf } from './accounting.js';
import {
  type BadField,
  type FieldJunk,
  kubeShaped,
  namesField,
  notACidr,
  notAnIntegerIn,
  notAnIp,
  notOneOf,
  otherThan,
  withOneBadField,
  withOneFieldMutated,
} from './junk.js';
import { endpointSliceObject, fqdnSliceObject, nodeObject, serviceObject } from './objects.js';
import { fc } from './setup.js';
import { assertWellFormedService, assertWellFormedSlice } from './well-formed.js';

const notAString = otherThan('string');
const anIpNotNone = notAnIp.filter((v) => v !== 'None');
const notAPort = notAnIntegerIn(1, 65535);
/** 0 and null are "no port allocated". */
const notAnOptionalPort = notAPort.filter((v) => v !== 0);

// Fields every kind has; a namespace that is not a string must not silently become `default`.
const METADATA_FIELDS: readonly FieldJunk[] = [
  { pattern: 'metadata.name', junk: fc.oneof(fc.constant(''), notAString) },
  { pattern: 'metadata.namespace', junk: otherThan('string', 'null') },
  { pattern: 'metadata.labels', junk: fc.oneof(otherThan('record', 'null'), fc.constant({ app: 1 })) },
];
const labelReportedAs = (): string[] => ['metadata.labels'];

const SERVICE_FIELDS: readonly FieldJunk[] = [
  ...METADATA_FIELDS,
  { pattern: 'metadata.labels.service.kubernetes.io/service-proxy-name', junk: notAString, alsoReportedAs: labelReportedAs },
  { pattern: 'spec', junk: otherThan('record') },
  { pattern: 'spec.type', junk: notOneOf(SERVICE_TYPES) },
  // A clusterIP checked against clusterIPs[0] is named as either.
  { pattern: 'spec.clusterIP', junk: fc.oneof(anIpNotNone, otherThan('string', 'null')) },
  { pattern: 'spec.clusterIPs', junk: otherThan('list', 'null') },
  { pattern: 'spec.clusterIPs.*', junk: fc.oneof(anIpNotNone, notAString), alsoReportedAs: () => ['spec.clusterIP'] },
  { pattern: 'spec.ports', junk: otherThan('list', 'null') },
  { pattern: 'spec.ports.*', junk: otherThan('record') },
  { pattern: 'spec.ports.*.name', junk: otherThan('string', 'null') },
  { pattern: 'spec.ports.*.protocol', junk: notOneOf(PROTOCOLS) },
  { pattern: 'spec.ports.*.port', junk: fc.oneof(notAPort, fc.constant(null)) },
  { pattern: 'spec.ports.*.nodePort', junk: notAnOptionalPort },
  { pattern: 'spec.externalIPs', junk: otherThan('list', 'null') },
  { pattern: 'spec.externalIPs.*', junk: fc.oneof(notAnIp, notAString) },
  { pattern: 'spec.sessionAffinity', junk: notOneOf(['None', 'ClientIP']) },
  { pattern: 'spec.sessionAffinityConfig', junk: otherThan('record', 'null') },
  { pattern: 'spec.sessionAffinityConfig.clientIP', junk: otherThan('record', 'null') },
  { pattern: 'spec.sessionAffinityConfig.clientIP.timeoutSeconds', junk: notAnIntegerIn(1, 86400) },
  { pattern: 'spec.externalTrafficPolicy', junk: notOneOf(['Cluster', 'Local', 'Global']) },
  { pattern: 'spec.internalTrafficPolicy', junk: notOneOf(['Cluster', 'Local']) },
  { pattern: 'spec.healthCheckNodePort', junk: notAnOptionalPort },
  { pattern: 'spec.loadBalancerSourceRanges', junk: otherThan('list', 'null') },
  { pattern: 'spec.loadBalancerSourceRanges.*', junk: fc.oneof(notACidr, notAString) },
  { pattern: 'status', junk: otherThan('record', 'null') },
  { pattern: 'status.loadBalancer', junk: otherThan('record', 'null') },
  { pattern: 'status.loadBalancer.ingress', junk: otherThan('list', 'null') },
  { pattern: 'status.loadBalancer.ingress.*', junk: otherThan('record') },
  { pattern: 'status.loadBalancer.ingress.*.ip', junk: fc.oneof(notAnIp, otherThan('string', 'null')) },
  { pattern: 'status.loadBalancer.ingress.*.ipMode', junk: notOneOf(['VIP', 'Proxy']) },
];

const SLICE_FIELDS: readonly FieldJunk[] = [
  ...METADATA_FIELDS,
  { pattern: 'metadata.labels.kubernetes.io/service-name', junk: fc.oneof(fc.constant(''), notAString), alsoReportedAs: labelReportedAs },
  { pattern: 'addressType', junk: notOneOf(['IPv4', 'IPv6', 'FQDN']) },
  { pattern: 'ports', junk: otherThan('list', 'null') },
  { pattern: 'ports.*', junk: otherThan('record') },
  { pattern: 'ports.*.name', junk: otherThan('string', 'null') },
  { pattern: 'ports.*.protocol', junk: notOneOf(PROTOCOLS) },
  { pattern: 'ports.*.port', junk: notAnOptionalPort },
  { pattern: 'endpoints', junk: otherThan('list', 'null') },
  { pattern: 'endpoints.*', junk: otherThan('record') },
  { pattern: 'endpoints.*.addresses', junk: fc.oneof(fc.constant([]), otherThan('list')) },
  { pattern: 'endpoints.*.addresses.*', junk: fc.oneof(notAnIp, notAString) },
  { pattern: 'endpoints.*.conditions', junk: otherThan('record', 'null') },
  { pattern: 'endpoints.*.conditions.ready', junk: otherThan('boolean', 'null') },
  { pattern: 'endpoints.*.conditions.serving', junk: otherThan('boolean', 'null') },
  { pattern: 'endpoints.*.conditions.terminating', junk: otherThan('boolean', 'null') },
  { pattern: 'endpoints.*.nodeName', junk: otherThan('string', 'null') },
  { pattern: 'endpoints.*.zone', junk: otherThan('string', 'null') },
  { pattern: 'endpoints.*.hints', junk: otherThan('record', 'null') },
  { pattern: 'endpoints.*.hints.forZones', junk: otherThan('list', 'null') },
  { pattern: 'endpoints.*.hints.forZones.*', junk: otherThan('record') },
  { pattern: 'endpoints.*.hints.forZones.*.name', junk: fc.oneof(fc.constant(''), notAString) },
];

const badService = withOneBadField(serviceObject, SERVICE_FIELDS).map((bad) => ({ kind: 'Service' as const, bad }));
const badSlice = withOneBadField(endpointSliceObject, SLICE_FIELDS).map((bad) => ({ kind: 'EndpointSlice' as const, bad }));

const validObject = fc.oneof(
  serviceObject.map((object): SourceObject => ({ kind: 'Service', object })),
  endpointSliceObject.map((object): SourceObject => ({ kind: 'EndpointSlice', object })),
);
const junkObject = fc.oneof(
  badService.map(({ bad }): SourceObject => ({ kind: 'Service', object: bad.object as KubeObject })),
  badSlice.map(({ bad }): SourceObject => ({ kind: 'EndpointSlice', object: bad.object as KubeObject })),
  withOneFieldMutated(serviceObject).map((object): SourceObject => ({ kind: 'Service', object: object as KubeObject })),
  withOneFieldMutated(endpointSliceObject).map((object): SourceObject => ({ kind: 'EndpointSlice', object: object as KubeObject })),
  fc.tuple(fc.constantFrom('Service' as const, 'EndpointSlice' as const), kubeShaped).map(([kind, object]): SourceObject => ({ kind, object })),
  fqdnSliceObject.map((object): SourceObject => ({ kind: 'EndpointSlice', object })),
  nodeObject.map((object): SourceObject => ({ kind: 'Node', object })),
);

const NODE = { name: 'n1', zone: 'z1', addresses: [parseIp('192.168.0.1'), parseIp('fd00::1')] };

function serviceMapOf(decoded: DecodedServiceInput): ReturnType<typeof computeServiceMap> {
  return computeServiceMap({ services: decoded.services, slices: decoded.slices, node: NODE, clusterCIDRs: [] }, { proxyName: PROXY_NAME });
}

function problemOf(kind: 'Service' | 'EndpointSlice', bad: BadField): Problem | undefined {
  return rejectionOf(() => (kind === 'Service' ? decodeService : decodeEndpointSlice)(bad.object as KubeObject));
}

test('Services and EndpointSlices built from valid values decode (FQDN slices are ignored)', () => {
  fc.assert(
    fc.property(serviceObject, endpointSliceObject, fqdnSliceObject, (service, slice, fqdn) => {
      assertWellFormedService(decodeService(service));
      const decoded = decodeEndpointSlice(slice);
      assert.ok(decoded !== undefined);
      assertWellFormedSlice(decoded);
      assert.equal(decodeEndpointSlice(fqdn), undefined);
    }),
  );
});

test('a bad value in a Service or an EndpointSlice is reported naming the field, and rejects that object', () => {
  fc.assert(
    fc.property(fc.oneof(badService, badSlice), ({ kind, bad }) => {
      const problem = problemOf(kind, bad);
      assert.ok(problem !== undefined, `${kind}: a bad ${bad.field} was accepted`);
      assert.equal(problem.kind, kind);
      assert.ok(namesField(problem.field, bad), `${bad.field} reported as ${problem.field}`);
    }),
  );
});

test('the service loop accounts for every object: decoded, ignored by design, or one problem naming it', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(validObject, junkObject), { maxLength: 8 }), (sources) => {
      assertServiceInputAccounted(sources, decodeServiceInput(sources));
    }),
  );
});

// "Valid" here is every object that decodes on its own: a mutation may leave an object valid.
test('junk beside valid Services and EndpointSlices, in any order, changes neither what they decode to nor the service map', () => {
  const entry = fc.oneof(validObject.map((source) => ({ source, valid: true })), junkObject.map((source) => ({ source, valid: false })));
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 10 }), (entries) => {
      const all = entries.map((e) => e.source);
      entries.forEach((e) => e.valid && assert.notEqual(decodeAlone(e.source).kind, 'problem', 'a valid object was rejected'));
      const valid = all.filter((s) => ['service', 'slice'].includes(decodeAlone(s).kind));
      const got = decodeServiceInput(all);
      const expected = decodeServiceInput(valid);
      assert.deepEqual(got.services, expected.services);
      assert.deepEqual(got.slices, expected.slices);
      assert.deepEqual(serviceMapOf(got), serviceMapOf(expected));
    }),
  );
});
