import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { electLeader } from '../../src/mesh/leader.js';
import { computeTopology } from '../../src/mesh/topology.js';
import {
  FIRST_HANDSHAKE_WINDOW_SECONDS,
  REKEY_TIMEOUT_SECONDS,
  type RemoteTunnel,
  SUSTAINED_SILENCE_SECONDS,
  type TunnelMark,
  type TunnelVerdict,
  UNMARKED,
  answerDue,
  judgeTunnel,
  judgeTunnels,
  nextTunnelMark,
  silentSinceAfter,
} from '../../src/mesh/tunnel-health.js';
import { parseCidr } from '../../src/model/ip.js';
import type { MeshNode } from '../../src/model/mesh.js';
import { fc } from '../properties/setup.js';
import { NOW, member, node, options } from './builder.js';

const remote = (over: Partial<RemoteTunnel> = {}): RemoteTunnel => ({ segment: 'location:west', configuredSince: NOW - 600, latestHandshake: NOW - 30, ...over });

describe('judging one tunnel', () => {
  /** Silent, while an answer was due, for a handshake's retry: the sustained silence that is a verdict. */
  const sustained = NOW - SUSTAINED_SILENCE_SECONDS;
  const cases: [string, Partial<RemoteTunnel>, string][] = [
    ['an answered probe is up', { probeAnswered: true }, 'up'],
    ['an answered probe is up before any handshake is recorded', { probeAnswered: true, latestHandshake: undefined, configuredSince: NOW }, 'up'],
    ['one unanswered round after a handshake is not down (a loaded machine loses a round)', { probeAnswered: false }, 'unknown'],
    ['an unanswered probe after a handshake is down once the silence lasted a handshake\'s retry', { probeAnswered: false, silentSince: sustained }, 'down'],
    ['a silence shorter than a handshake\'s retry is not down', { probeAnswered: false, silentSince: sustained + 1 }, 'unknown'],
    ['sustained silence is down however recent the last handshake', { probeAnswered: false, latestHandshake: NOW, silentSince: sustained }, 'down'],
    ['no probe sent is unknown', {}, 'unknown'],
    ['no probe sent is unknown during a sustained silence too', { silentSince: NOW - 600 }, 'unknown'],
    ['a fresh peer without a handshake is unknown within the first handshake window', { probeAnswered: false, latestHandshake: undefined, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS + 1, silentSince: sustained }, 'unknown'],
    ['a peer that never completed a handshake is down after the window and a sustained silence', { probeAnswered: false, latestHandshake: undefined, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS, silentSince: sustained }, 'down'],
    ['a peer that never completed a handshake is not down at its first round after the window', { probeAnswered: false, latestHandshake: undefined, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS, silentSince: NOW }, 'unknown'],
    // A new leader: the remote adds its key at its next reconcile at the latest, then handshakes.
    ['a fresh leader is unknown while the remote may not have reconciled yet', { probeAnswered: false, latestHandshake: undefined, remoteCatchUp: 30, configuredSince: NOW - 30 - FIRST_HANDSHAKE_WINDOW_SECONDS + 1 }, 'unknown'],
    ['a fresh leader is down after the remote\'s resync, the window and a sustained silence', { probeAnswered: false, latestHandshake: undefined, remoteCatchUp: 30, configuredSince: NOW - 30 - FIRST_HANDSHAKE_WINDOW_SECONDS, silentSince: sustained }, 'down'],
    // Seen in the routed world: b led for a moment at its start, kept the peer and its handshake, and
    // was marked at its first probe as the new leader, before the remote had switched to its key.
    ['a handshake from before this leadership counts as none within the window', { probeAnswered: false, latestHandshake: NOW - 300, remoteCatchUp: 30, configuredSince: NOW - 10, silentSince: sustained }, 'unknown'],
    ['a handshake from before this leadership counts as none after the window too', { probeAnswered: false, latestHandshake: NOW - 300, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS, silentSince: sustained }, 'down'],
    ['a handshake since this leadership began makes silence count at once', { probeAnswered: false, latestHandshake: NOW - 5, remoteCatchUp: 30, configuredSince: NOW - 10, silentSince: sustained }, 'down'],
    // Behind NAT (a roaming remote, keepalive 5 s): our probes reach it only once its packets show where it is.
    ['a roaming remote silent for less than a keepalive and a handshake is unknown (its NAT may have moved it)', { probeAnswered: false, roamingKeepalive: 5, publicStandIn: true, unansweredSince: NOW - 5 - REKEY_TIMEOUT_SECONDS }, 'unknown'],
    ['a roaming remote silent for longer than a keepalive and a handshake is down', { probeAnswered: false, roamingKeepalive: 5, publicStandIn: true, unansweredSince: NOW - 6 - REKEY_TIMEOUT_SECONDS }, 'down'],
    ['a roaming remote silent however long is unknown when no other member has a public address (it could reach none)', { probeAnswered: false, roamingKeepalive: 5, unansweredSince: NOW - 600 }, 'unknown'],
    ['a roaming remote whose first probe just went unanswered is unknown', { probeAnswered: false, roamingKeepalive: 5 }, 'unknown'],
    ['a roaming remote that never reached us is unknown, however long: only it can open the path', { probeAnswered: false, roamingKeepalive: 5, latestHandshake: undefined, configuredSince: NOW - 600, unansweredSince: NOW - 600 }, 'unknown'],
    ['a roaming remote that reached us only before this leadership is unknown', { probeAnswered: false, roamingKeepalive: 5, publicStandIn: true, latestHandshake: NOW - 700, configuredSince: NOW - 600, unansweredSince: NOW - 600 }, 'unknown'],
    ['an answered probe to a roaming remote is up', { probeAnswered: true, roamingKeepalive: 5 }, 'up'],
  ];
  for (const [name, over, expected] of cases) test(name, () => assert.equal(judgeTunnel(remote(over), NOW), expected));
});

describe('judging a leader by all its remote segments', () => {
  const up = remote({ segment: 'up', probeAnswered: true });
  const down = remote({ segment: 'down', probeAnswered: false, silentSince: NOW - SUSTAINED_SILENCE_SECONDS });
  const unknown = remote({ segment: 'unknown' });
  const cases: [string, RemoteTunnel[], TunnelVerdict][] = [
    ['a leader without remote segments has nothing to judge by', [], 'unknown'],
    ['every remote segment down is broken', [down, down], 'broken'],
    ['one remote segment up is healthy', [down, up, down], 'healthy'],
    ['one unreachable remote location is that location\'s problem', [down, unknown], 'unknown'],
    ['every remote segment unanswered for one round only is no verdict', [remote({ probeAnswered: false }), remote({ probeAnswered: false })], 'unknown'],
    ['all unknown stays unknown', [unknown], 'unknown'],
  ];
  for (const [name, remotes, expected] of cases) test(name, () => assert.equal(judgeTunnels(remotes, NOW), expected));

  test('property: an answered probe anywhere is never broken; no answer is never healthy', () => {
    const arb = fc.array(fc.record({ answered: fc.option(fc.boolean()), handshake: fc.option(fc.integer({ min: NOW - 1000, max: NOW })), since: fc.integer({ min: NOW - 1000, max: NOW }), silent: fc.option(fc.integer({ min: NOW - 20, max: NOW })) }), { maxLength: 6 });
    fc.assert(
      fc.property(arb, (rows) => {
        const remotes = rows.map((r, i) => remote({ segment: `s${i}`, configuredSince: r.since, latestHandshake: r.handshake ?? undefined, probeAnswered: r.answered ?? undefined, silentSince: r.silent ?? undefined }));
        const verdict = judgeTunnels(remotes, NOW);
        assert.equal(verdict === 'healthy', rows.some((r) => r.answered === true));
        const due = (r: (typeof rows)[number]) => (r.handshake !== null && r.handshake >= r.since) || NOW - r.since >= FIRST_HANDSHAKE_WINDOW_SECONDS;
        const sustained = (r: (typeof rows)[number]) => r.silent !== null && NOW - r.silent >= SUSTAINED_SILENCE_SECONDS;
        if (verdict === 'broken') assert.ok(rows.every((r) => r.answered === false && due(r) && sustained(r)));
      }),
    );
  });
});

describe('silence over rounds', () => {
  /** One leader's rounds against one remote, as tunnel-watch.ts threads them: [time, probe answered]. */
  function verdicts(base: Partial<RemoteTunnel>, rounds: readonly [number, boolean | undefined][]): string[] {
    let silentSince: number | undefined;
    return rounds.map(([now, answered]) => {
      const observed = remote({ ...base, ...(answered !== undefined && { probeAnswered: answered }) });
      silentSince = silentSinceAfter(observed, silentSince, now);
      return judgeTunnel({ ...observed, ...(silentSince !== undefined && { silentSince }) }, now);
    });
  }

  test('one unanswered round between answered ones is never down', () =>
    assert.deepEqual(verdicts({}, [[NOW, true], [NOW + 6, false], [NOW + 12, true], [NOW + 18, false], [NOW + 24, true]]), ['up', 'unknown', 'up', 'unknown', 'up']));
  test('silence over two rounds a handshake\'s retry apart is down', () =>
    assert.deepEqual(verdicts({}, [[NOW, true], [NOW + 6, false], [NOW + 6 + REKEY_TIMEOUT_SECONDS, false]]), ['up', 'unknown', 'down']));
  test('two unanswered rounds closer than a handshake\'s retry wait for a third', () =>
    assert.deepEqual(verdicts({}, [[NOW, false], [NOW + REKEY_TIMEOUT_SECONDS - 1, false], [NOW + REKEY_TIMEOUT_SECONDS, false]]), ['unknown', 'unknown', 'down']));
  test('a round without a probe neither ends the silence nor judges', () =>
    assert.deepEqual(verdicts({}, [[NOW, false], [NOW + 3, undefined], [NOW + 6, false]]), ['unknown', 'unknown', 'down']));
  test('an answer ends the silence: the next unanswered round starts it again', () =>
    assert.deepEqual(verdicts({}, [[NOW, false], [NOW + 3, true], [NOW + 6, false], [NOW + 9, false], [NOW + 11, false]]), ['unknown', 'up', 'unknown', 'unknown', 'down']));

  // The load failure: reconciles 20 s apart (each reaching its probe late), a fresh leader without a
  // handshake, the remote as slow to add its key. Its window passed between two rounds; the round
  // after it was the first due, and used to mark the healthy leader broken on its own.
  const fresh: Partial<RemoteTunnel> = { latestHandshake: undefined, configuredSince: NOW, remoteCatchUp: 2 };
  test('a fresh leader\'s rounds inside its first-handshake window do not count as silence', () =>
    assert.deepEqual(verdicts(fresh, [[NOW, false], [NOW + 20, false], [NOW + 40, true]]), ['unknown', 'unknown', 'up']));
  test('a fresh leader silent for two due rounds is down', () =>
    assert.deepEqual(verdicts(fresh, [[NOW, false], [NOW + 20, false], [NOW + 40, false]]), ['unknown', 'unknown', 'down']));

  const cases: [string, Partial<RemoteTunnel>, number | undefined, number | undefined][] = [
    ['an unanswered due probe starts the silence at this round', { probeAnswered: false }, undefined, NOW],
    ['an unanswered due probe keeps an earlier start', { probeAnswered: false }, NOW - 9, NOW - 9],
    ['an answer ends it', { probeAnswered: true }, NOW - 9, undefined],
    ['no probe keeps it', {}, NOW - 9, NOW - 9],
    ['an unanswered probe not yet due is no silence', { probeAnswered: false, latestHandshake: undefined, configuredSince: NOW }, undefined, undefined],
  ];
  for (const [name, over, previous, expected] of cases) test(`silentSince: ${name}`, () => assert.equal(silentSinceAfter(remote(over), previous, NOW), expected));

  test('an answer is due after a handshake in this leadership, or after the window', () => {
    assert.equal(answerDue(remote({ latestHandshake: NOW - 1, configuredSince: NOW - 2 }), NOW), true);
    assert.equal(answerDue(remote({ latestHandshake: undefined, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS + 1 }), NOW), false);
    assert.equal(answerDue(remote({ latestHandshake: undefined, configuredSince: NOW - FIRST_HANDSHAKE_WINDOW_SECONDS }), NOW), true);
  });
});

describe('the mark (hysteresis)', () => {
  const CLEAR = 6;
  test('a broken verdict marks at once', () => assert.deepEqual(nextTunnelMark(UNMARKED, 'broken', NOW, CLEAR), { broken: true }));
  test('healthy or unknown leaves an unmarked node unmarked', () => {
    assert.deepEqual(nextTunnelMark(UNMARKED, 'healthy', NOW, CLEAR), UNMARKED);
    assert.deepEqual(nextTunnelMark(UNMARKED, 'unknown', NOW, CLEAR), UNMARKED);
  });
  test('a mark clears only after the tunnels have been healthy for the whole hold time', () => {
    let mark: TunnelMark = { broken: true };
    mark = nextTunnelMark(mark, 'healthy', NOW, CLEAR);
    assert.deepEqual(mark, { broken: true, healthySince: NOW });
    mark = nextTunnelMark(mark, 'healthy', NOW + CLEAR - 1, CLEAR);
    assert.equal(mark.broken, true);
    assert.deepEqual(nextTunnelMark(mark, 'healthy', NOW + CLEAR, CLEAR), UNMARKED);
  });
  test('a broken verdict while healthy restarts the hold time', () => {
    const mark = nextTunnelMark({ broken: true, healthySince: NOW }, 'broken', NOW + 3, CLEAR);
    assert.deepEqual(mark, { broken: true });
  });
  test('a node that does not lead (no verdict) keeps its mark however long', () => {
    assert.deepEqual(nextTunnelMark({ broken: true }, undefined, NOW + 1e6, CLEAR), { broken: true });
  });

  test('property: a mark clears only after healthy verdicts spanning the hold time, and never without a verdict', () => {
    const step = fc.record({ verdict: fc.constantFrom<TunnelVerdict | undefined>('healthy', 'broken', 'unknown', undefined), dt: fc.integer({ min: 0, max: 4 }) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        let mark: TunnelMark = { broken: true };
        let now = NOW;
        let healthyFrom: number | undefined;
        for (const s of steps) {
          now += s.dt;
          if (s.verdict === 'broken') healthyFrom = undefined;
          if (s.verdict === 'healthy') healthyFrom ??= now;
          const next = nextTunnelMark(mark, s.verdict, now, CLEAR);
          if (mark.broken && !next.broken) {
            assert.equal(s.verdict, 'healthy');
            assert.ok(healthyFrom !== undefined && now - healthyFrom >= CLEAR);
          }
          if (s.verdict === 'broken') assert.equal(next.broken, true);
          if (s.verdict === undefined || s.verdict === 'unknown') assert.deepEqual(next, mark);
          mark = next;
          if (!mark.broken) break;
        }
      }),
    );
  });
});

describe('election with marks', () => {
  const pods = ['10.2.0.0/24'];
  const marked = (n: MeshNode, leading = false): MeshNode => ({ ...n, tunnelsBroken: true, ...(leading && { wireguardIPs: [parseCidr('10.4.0.1/16')] }) });
  const a = node('a', { ep: '10.1.0.1:51820', leader: true, pods });
  const b = node('b', { ep: '10.1.0.2:51820', pods });
  const c = node('c', { ep: '203.0.113.3:51820', pods });

  test('a marked leader is passed over for the next by Kilo\'s rule', () => assert.equal(electLeader([marked(a), b, c]).name, 'c'));
  test('unmarked members elect by Kilo\'s rule among themselves', () => assert.equal(electLeader([marked(a), b, marked(c)]).name, 'b'));
  test('when every member is marked, the one leading now stays', () => assert.equal(electLeader([marked(a), marked(b, true), marked(c)]).name, 'b'));
  test('when every member is marked and none is known to lead, Kilo\'s rule among all', () => assert.equal(electLeader([marked(a), marked(b), marked(c)]).name, 'a'));

  test('the local view: a marked local leader steps down in its own topology', () => {
    const nodes = [{ ...member('a', 1, { leader: true }), tunnelsBroken: true }, member('a', 2)];
    const t = computeTopology({ nodes, peers: [] }, options('a1'));
    assert.equal(t.segments[0]?.leader.name, 'a2');
    assert.equal(t.leader, false);
  });

  test('property: without marks the election is Kilo\'s; with some, never a marked node while an unmarked one exists', () => {
    const arb = fc.array(fc.record({ leader: fc.boolean(), public: fc.boolean(), broken: fc.boolean(), leading: fc.boolean() }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(arb, (rows) => {
        const members = rows.map((r, i) =>
          node(`n${i}`, { ep: r.public ? `203.0.113.${i + 1}:51820` : `10.1.0.${i + 1}:51820`, leader: r.leader, pods }),
        );
        const withMarks = members.map((m, i) => (rows[i]?.broken ? marked(m, rows[i]?.leading) : m));
        const unmarked = withMarks.filter((m) => !m.tunnelsBroken);
        const elected = electLeader(withMarks);
        assert.equal(electLeader(members.map((m) => ({ ...m, tunnelsBroken: false }))).name, electLeader(members).name);
        if (unmarked.length > 0) assert.equal(elected.name, electLeader(unmarked).name);
        else assert.ok(withMarks.includes(elected));
        const leading = withMarks.filter((m) => m.wireguardIPs !== undefined);
        if (unmarked.length === 0 && leading.length === 1) assert.equal(elected.name, leading[0]?.name);
      }),
    );
  });
});
