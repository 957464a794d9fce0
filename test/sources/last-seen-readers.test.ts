import assert from 'node:assert/strict';
import { test } from 'node:test';
import { announcesLeases, lastSeenAnnouncing, lastSeenReaders } from '../../src/sources/last-seen-readers.js';
import type { KubeObject } from '../../src/sources/objects.js';

const KEY = 'wirelane.io/key';
const LAST_SEEN = 'wirelane.io/last-seen';
const HEARTBEAT = 'wirelane.io/heartbeat';
const node = (name: string, annotations: Record<string, string> = {}): KubeObject => ({ kind: 'Node', metadata: { name, annotations } });
const upgraded = (name: string) => node(name, { [KEY]: `key-of-${name}`, ...lastSeenAnnouncing(1700000000) });
const older = (name: string) => node(name, { [KEY]: `key-of-${name}`, [LAST_SEEN]: '1700000000' });

test('last-seen is written with the announcement that names it', () => {
  assert.deepEqual(lastSeenAnnouncing(1764745000), { [LAST_SEEN]: '1764745000', [HEARTBEAT]: 'lease:1764745000' });
  const cases: [string, Record<string, string>, boolean][] = [
    ['as written together', lastSeenAnnouncing(1764745000), true],
    ['last-seen rewritten since by an agent that knows no announcement (a rollback)', { ...lastSeenAnnouncing(1764745000), [LAST_SEEN]: '1764745030' }, false],
    ['no announcement', { [LAST_SEEN]: '1764745000' }, false],
    ['an announcement without last-seen', { [HEARTBEAT]: 'lease:' }, false],
    ['another value', { [LAST_SEEN]: '1', [HEARTBEAT]: 'lease' }, false],
    ["Kilo's last-seen does not count", { 'kilo.squat.ai/last-seen': '1', [HEARTBEAT]: 'lease:1' }, false],
  ];
  for (const [name, annotations, announces] of cases) assert.equal(announcesLeases(annotations), announces, name);
});

test('last-seen readers: nodes whose agent may judge others by last-seen alone', () => {
  const rolledBack = node('b', { [KEY]: 'k', ...lastSeenAnnouncing(1700000000), [LAST_SEEN]: '1700000030' });
  const cases: [string, KubeObject[], string[]][] = [
    ['no nodes: nobody reads', [], []],
    ['every agent announces Leases: nobody reads (the timer stops)', [upgraded('a'), upgraded('b')], []],
    ['a node with a key and no announcement runs an older agent', [upgraded('a'), older('b')], ['b']],
    ['several older agents, by name', [older('d'), upgraded('a'), older('c')], ['c', 'd']],
    ['an agent rolled back under its announcement reads again', [upgraded('a'), rolledBack], ['b']],
    ['a node without a key runs no agent (yet): nobody reads', [upgraded('a'), node('b'), node('c', { [LAST_SEEN]: '1' })], []],
    ['this node is never its own reader (its announcement may not have come back yet)', [older('a'), upgraded('b')], []],
    ['an announcement without a key: no agent runs there', [upgraded('a'), node('b', lastSeenAnnouncing(1))], []],
    ["a Kilo agent reads kilo.squat.ai/last-seen, which nobody here writes", [upgraded('a'), node('b', { 'kilo.squat.ai/key': 'k' })], []],
    ['a node without annotations', [upgraded('a'), { kind: 'Node', metadata: { name: 'b' } }], []],
  ];
  for (const [name, nodes, readers] of cases) assert.deepEqual(lastSeenReaders(nodes, 'a'), readers, name);
});
