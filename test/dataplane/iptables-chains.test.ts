// Integration: the iptables dataplane against the real kernel. Every test works inside network
// namespaces of its own (unique names, removed in `finally`), so the root namespace's rules are
// never read or written.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { runCommand, spawnProcess } from '../../src/host/command.js';
import { createNetns, deleteNetns } from '../../src/host/netns.js';
import { type BackendKind, type CommandRunner, detectIptablesBackend, iptablesBackend, sharedIptablesBackend } from '../../src/dataplane/iptables/backend.js';
import { IptablesChains } from '../../src/dataplane/iptables/chains.js';
import { computeMeshRules } from '../../src/dataplane/iptables/mesh-rules.js';
import type { DesiredRules, FamilyRules, OwnedChain } from '../../src/dataplane/iptables/ruleset.js';
import { parseCidr } from '../../src/model/ip.js';
import { IPTABLES_TOOLS, capabilitySkip } from '../support/capability.js';
import { availableIptablesBackends, countedIptables } from '../support/iptables-backends.js';

const skip = await capabilitySkip('iptables integration tests', IPTABLES_TOOLS);

const backends = skip ? [] : await availableIptablesBackends();

let serial = 0;
function nsName(tag: string): string {
  serial += 1;
  return `wl-ipt-${process.pid.toString(36)}-${serial}-${tag}`;
}

/** Runs body with fresh namespaces that are removed afterwards, also when it fails. */
async function withNetns(tags: readonly string[], body: (names: string[]) => Promise<void>): Promise<void> {
  const names = tags.map(nsName);
  await createNetns(names);
  try {
    await body(names);
  } finally {
    await deleteNetns(names);
  }
}

/** A hand-run iptables command, as an administrator (or another program) would type it. */
async function byHand(netns: string, kind: BackendKind, family: 4 | 6, args: string[]): Promise<void> {
  const tool = `${family === 4 ? 'iptables' : 'ip6tables'}-${kind}`;
  await runCommand(tool, args, { netns });
}

async function saveText(netns: string, kind: BackendKind, family: 4 | 6): Promise<string> {
  return (await runCommand(iptablesBackend(kind).save[family], [], { netns })).stdout;
}

/** The `-A` lines of one chain, as iptables-save prints them. */
async function chainLines(netns: string, kind: BackendKind, family: 4 | 6, table: string, chain: string): Promise<string[]> {
  const { stdout } = await runCommand(iptablesBackend(kind).save[family], ['-t', table], { netns });
  return stdout.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
}

function natChain(name: string, rules: string[]): OwnedChain {
  return { table: 'nat', name, rules };
}

const PODS4 = '10.2.1.0/24';
function sample(natRules: string[] = ['-d 10.2.0.0/16 -j RETURN', '-j MASQUERADE']): DesiredRules {
  const v4: FamilyRules = {
    chains: [
      natChain('WIRELANE-NAT', natRules),
      { table: 'filter', name: 'WIRELANE-FORWARD', rules: ['-s 10.2.0.0/16 -j ACCEPT', '-d 10.2.0.0/16 -j ACCEPT'] },
    ],
    jumps: [
      { table: 'nat', from: 'POSTROUTING', to: 'WIRELANE-NAT', match: `-s ${PODS4}`, comment: 'wirelane: nat', position: 'append' },
      { table: 'filter', from: 'FORWARD', to: 'WIRELANE-FORWARD', comment: 'wirelane: forward', position: 'append' },
    ],
  };
  const v6: FamilyRules = {
    chains: [natChain('WIRELANE-NAT', ['-d fd10:2::/48 -j RETURN', '-j MASQUERADE'])],
    jumps: [{ table: 'nat', from: 'POSTROUTING', to: 'WIRELANE-NAT', match: '-s fd10:2:1::/64', comment: 'wirelane: nat', position: 'append' }],
  };
  return { 4: v4, 6: v6 };
}

describe('iptables backend detection', { skip }, () => {
  test('follows the host iptables command', async () => {
    await withNetns(['detect'], async ([ns]) => {
      const version = (await runCommand('iptables', ['-V'])).stdout;
      const detected = await detectIptablesBackend(undefined, ns);
      assert.equal(detected.kind, version.includes('nf_tables') ? 'nft' : 'legacy');
      // Without an explicit backend the dataplane writes where the host's iptables reads.
      const chains = new IptablesChains({ netns: ns });
      await chains.apply(sample());
      const listed = (await runCommand('iptables', ['-t', 'nat', '-S', 'WIRELANE-NAT'], { netns: ns })).stdout;
      assert.match(listed, /-A WIRELANE-NAT -j MASQUERADE/);
    });
  });
});

describe('iptables reads shared between owners', { skip }, () => {
  /** The host runner, counting `iptables -V` and iptables-save runs by tool. */
  const counting = () => {
    const calls: string[] = [];
    const run: CommandRunner = (file, args, opts) => {
      if (file === 'iptables' || file.endsWith('-save')) calls.push(file === 'iptables' ? `iptables ${args.join(' ')}` : file);
      return runCommand(file, args, opts);
    };
    return { run, calls };
  };
  const OTHER = { chainPrefix: 'WLOTHER-', commentPrefix: 'wlother:' };

  test('owners in one namespace ask for the backend once and share saves that run at the same time', async () => {
    await withNetns(['shared'], async ([ns]) => {
      const { run, calls } = counting();
      const mesh = new IptablesChains({ netns: ns, run });
      const other = new IptablesChains({ netns: ns, run, owner: OTHER });
      await Promise.all([mesh.cleanup(), other.cleanup()]);
      // One version query, and one save per family for both owners.
      assert.equal(calls.filter((c) => c === 'iptables -V').length, 1);
      assert.equal(calls.filter((c) => c.endsWith('-save')).length, 2);
      calls.length = 0;
      await Promise.all([mesh.apply(sample()), other.cleanup()]);
      assert.equal(calls.filter((c) => c === 'iptables -V').length, 0);
      const listed = (await runCommand('iptables', ['-t', 'nat', '-S', 'WIRELANE-NAT'], { netns: ns })).stdout;
      assert.match(listed, /-A WIRELANE-NAT -j MASQUERADE/);
    });
  });

  test('a save that began before a restore is not handed to a read after it: a rule deleted by hand still comes back', async () => {
    await withNetns(['repair'], async ([ns]) => {
      const { run } = counting();
      const mesh = new IptablesChains({ netns: ns, run, fullSyncPeriodMs: 0 });
      const other = new IptablesChains({ netns: ns, run, owner: OTHER, fullSyncPeriodMs: 0 });
      await mesh.apply(sample());
      const kind = (await sharedIptablesBackend(run, ns)).kind;
      await byHand(ns!, kind, 4, ['-t', 'nat', '-D', 'WIRELANE-NAT', '-j', 'MASQUERADE']);
      // The other owner's reads run alongside the mesh's read, restore and read after the restore.
      const [report] = await Promise.all([mesh.apply(sample()), other.cleanup(), other.cleanup()]);
      assert.equal(report.written, 1);
      assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT'), ['-A WIRELANE-NAT -d 10.2.0.0/16 -j RETURN', '-A WIRELANE-NAT -j MASQUERADE']);
      assert.equal((await mesh.apply(sample())).written, 0);
    });
  });

  test('each namespace is asked once, on its own', async () => {
    await withNetns(['a', 'b'], async ([a, b]) => {
      const { run, calls } = counting();
      await Promise.all([sharedIptablesBackend(run, a), sharedIptablesBackend(run, b), sharedIptablesBackend(run, a)]);
      assert.equal(calls.filter((c) => c === 'iptables -V').length, 2);
    });
  });
});

for (const kind of backends) {
  describe(`iptables chains (${kind})`, { skip }, () => {
    const open = (netns: string): IptablesChains => new IptablesChains({ netns, backend: iptablesBackend(kind) });
    /** An instance on a clock the test moves, counting the iptables-save and -restore runs. */
    const counted = (netns: string) => {
      const host = countedIptables();
      const chains = new IptablesChains({ netns, backend: iptablesBackend(kind), run: host.run, now: host.now });
      return { chains, counting: host.counting, periodPasses: host.periodPasses };
    };

    test('apply writes our chains and jumps in one restore per family; a second apply writes nothing', async () => {
      await withNetns(['apply'], async ([ns]) => {
        const chains = open(ns!);
        const first = await chains.apply(sample());
        assert.equal(first.written, 2);
        assert.deepEqual(first.restores.map((r) => r.family), [4, 6]);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT'), ['-A WIRELANE-NAT -d 10.2.0.0/16 -j RETURN', '-A WIRELANE-NAT -j MASQUERADE']);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'POSTROUTING'), [
          `-A POSTROUTING -s ${PODS4} -m comment --comment "wirelane: nat" -j WIRELANE-NAT`,
        ]);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'filter', 'FORWARD'), ['-A FORWARD -m comment --comment "wirelane: forward" -j WIRELANE-FORWARD']);
        assert.deepEqual(await chainLines(ns!, kind, 6, 'nat', 'WIRELANE-NAT'), ['-A WIRELANE-NAT -d fd10:2::/48 -j RETURN', '-A WIRELANE-NAT -j MASQUERADE']);
        assert.deepEqual(await chainLines(ns!, kind, 6, 'nat', 'POSTROUTING'), [
          '-A POSTROUTING -s fd10:2:1::/64 -m comment --comment "wirelane: nat" -j WIRELANE-NAT',
        ]);
        assert.equal((await chains.apply(sample())).written, 0);
        assert.equal((await chains.apply(sample())).written, 0);
      });
    });

    test('rules that iptables-save spells differently still apply as a no-op the second time', async () => {
      await withNetns(['canon'], async ([ns]) => {
        const chains = open(ns!);
        // `-d 10.9.0.1` comes back as `/32`, `--dport` gains `-m tcp`, the comment gains no quotes.
        const desired: DesiredRules = { 4: { chains: [natChain('WIRELANE-NAT', ['-d 10.9.0.1 -p tcp --dport 80 -m comment --comment x -j RETURN'])], jumps: [] } };
        assert.equal((await chains.apply(desired)).written, 1);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT'), ['-A WIRELANE-NAT -d 10.9.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment x -j RETURN']);
        assert.equal((await chains.apply(desired)).written, 0);
      });
    });

    test('a changed chain is the only one in the restore input', async () => {
      await withNetns(['change'], async ([ns]) => {
        const chains = open(ns!);
        await chains.apply(sample());
        const report = await chains.apply(sample(['-d 10.2.0.0/16 -j RETURN', '-d 10.3.0.0/16 -j RETURN', '-j MASQUERADE']));
        assert.equal(report.written, 1);
        const restore = report.restores[0]!;
        assert.equal(restore.family, 4);
        assert.equal(
          restore.input,
          '*nat\n:WIRELANE-NAT - [0:0]\n-A WIRELANE-NAT -d 10.2.0.0/16 -j RETURN\n-A WIRELANE-NAT -d 10.3.0.0/16 -j RETURN\n-A WIRELANE-NAT -j MASQUERADE\nCOMMIT\n',
        );
        assert.deepEqual(restore.writtenChains, [{ table: 'nat', chain: 'WIRELANE-NAT' }]);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT'), [
          '-A WIRELANE-NAT -d 10.2.0.0/16 -j RETURN',
          '-A WIRELANE-NAT -d 10.3.0.0/16 -j RETURN',
          '-A WIRELANE-NAT -j MASQUERADE',
        ]);
        assert.equal((await chains.apply(sample(['-d 10.2.0.0/16 -j RETURN', '-d 10.3.0.0/16 -j RETURN', '-j MASQUERADE']))).written, 0);
      });
    });

    test('a chain no longer wanted is removed with its jump; other chains stay untouched', async () => {
      await withNetns(['drop'], async ([ns]) => {
        const chains = open(ns!);
        await chains.apply(sample());
        const without = sample();
        const v4 = without[4]!;
        const report = await chains.apply({ ...without, 4: { chains: v4.chains.filter((c) => c.table === 'nat'), jumps: v4.jumps.filter((j) => j.table === 'nat') } });
        assert.equal(report.written, 1);
        assert.equal(report.restores[0]!.input, '*filter\n:WIRELANE-FORWARD - [0:0]\n-D FORWARD -m comment --comment "wirelane: forward" -j WIRELANE-FORWARD\n-X WIRELANE-FORWARD\nCOMMIT\n');
        const filter = (await runCommand(iptablesBackend(kind).save[4], ['-t', 'filter'], { netns: ns! })).stdout;
        assert.doesNotMatch(filter, /WIRELANE|wirelane/);
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT')).length, 2);
      });
    });

    test('foreign rules and chains survive apply and cleanup', async () => {
      await withNetns(['foreign'], async ([ns]) => {
        await byHand(ns!, kind, 4, ['-t', 'nat', '-N', 'KUBE-POSTROUTING']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-A', 'KUBE-POSTROUTING', '-j', 'MASQUERADE']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-A', 'POSTROUTING', '-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-A', 'POSTROUTING', '-d', '192.0.2.0/24', '-j', 'RETURN']);
        await byHand(ns!, kind, 4, ['-t', 'filter', '-A', 'FORWARD', '-j', 'DROP']);
        const foreign = async (): Promise<string[]> => [
          ...(await chainLines(ns!, kind, 4, 'nat', 'KUBE-POSTROUTING')),
          ...(await chainLines(ns!, kind, 4, 'nat', 'POSTROUTING')).filter((l) => !l.includes('wirelane')),
          ...(await chainLines(ns!, kind, 4, 'filter', 'FORWARD')).filter((l) => !l.includes('wirelane')),
        ];
        const before = await foreign();
        assert.equal(before.length, 4);
        const chains = open(ns!);
        await chains.apply(sample());
        assert.deepEqual(await foreign(), before);
        // Appended: the foreign rules keep coming first.
        assert.match((await chainLines(ns!, kind, 4, 'nat', 'POSTROUTING'))[2]!, /wirelane: nat/);
        await chains.apply(sample(['-j MASQUERADE']));
        assert.deepEqual(await foreign(), before);
        await chains.cleanup();
        assert.deepEqual(await foreign(), before);
      });
    });

    test('after the first (full) sync, applies run no iptables-save: idle writes nothing, a change writes only its chain', async () => {
      await withNetns(['partial'], async ([ns]) => {
        const { chains, counting } = counted(ns!);
        const first = await counting(() => chains.apply(sample()));
        assert.equal(first.value.sync, 'full');
        assert.deepEqual([first.saves, first.restores], [4, 2], 'a read before and after each family`s restore');
        const idle = await counting(() => chains.apply(sample()));
        assert.deepEqual([idle.value.sync, idle.saves, idle.restores, idle.value.written], ['partial', 0, 0, 0]);
        const change = await counting(() => chains.apply(sample(['-d 10.3.0.0/16 -j RETURN', '-j MASQUERADE'])));
        assert.deepEqual([change.value.sync, change.saves, change.restores], ['partial', 0, 1]);
        assert.equal(change.value.restores[0]!.input, '*nat\n:WIRELANE-NAT - [0:0]\n-A WIRELANE-NAT -d 10.3.0.0/16 -j RETURN\n-A WIRELANE-NAT -j MASQUERADE\nCOMMIT\n');
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT'), ['-A WIRELANE-NAT -d 10.3.0.0/16 -j RETURN', '-A WIRELANE-NAT -j MASQUERADE']);
      });
    });

    test('a chain deleted by hand with the jump to it from POSTROUTING goes unnoticed by partial applies and is restored by the next full sync', async () => {
      await withNetns(['deleted'], async ([ns]) => {
        const { chains, counting, periodPasses } = counted(ns!);
        await chains.apply(sample());
        await byHand(ns!, kind, 4, ['-t', 'nat', '-D', 'POSTROUTING', '-s', PODS4, '-m', 'comment', '--comment', 'wirelane: nat', '-j', 'WIRELANE-NAT']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-F', 'WIRELANE-NAT']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-X', 'WIRELANE-NAT']);
        const partial = await counting(() => chains.apply(sample()));
        assert.deepEqual([partial.value.sync, partial.saves, partial.restores], ['partial', 0, 0], 'the record is trusted');
        periodPasses();
        const report = await chains.apply(sample());
        assert.equal(report.sync, 'full');
        assert.equal(report.written, 1);
        assert.deepEqual(report.restores[0]!.writtenChains, [{ table: 'nat', chain: 'WIRELANE-NAT' }]);
        assert.deepEqual(report.restores[0]!.rewrittenJumps, [{ table: 'nat', chain: 'POSTROUTING' }]);
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT')).length, 2);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'POSTROUTING'), [`-A POSTROUTING -s ${PODS4} -m comment --comment "wirelane: nat" -j WIRELANE-NAT`]);
        assert.equal((await chains.apply(sample())).written, 0);
        periodPasses();
        assert.equal((await chains.apply(sample())).written, 0, 'the next full sync finds everything in place');
      });
    });

    test('the same rules object handed in again (an idle resync) plans nothing until a full sync, which still repairs', async () => {
      await withNetns(['same'], async ([ns]) => {
        const { chains, counting, periodPasses } = counted(ns!);
        const rules = sample();
        await chains.apply(rules);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-F', 'WIRELANE-NAT']);
        const idle = await counting(() => chains.apply(rules));
        assert.deepEqual([idle.value.sync, idle.saves, idle.restores, idle.value.written], ['partial', 0, 0, 0]);
        periodPasses();
        const full = await counting(() => chains.apply(rules));
        assert.deepEqual([full.value.sync, full.value.written], ['full', 1], 'the full sync reads and rewrites what was flushed');
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT')).length, 2);
      });
    });

    test('a chain flushed or edited by hand is rewritten by the next full sync', async () => {
      await withNetns(['flushed'], async ([ns]) => {
        const { chains, periodPasses } = counted(ns!);
        await chains.apply(sample());
        await byHand(ns!, kind, 6, ['-t', 'nat', '-F', 'WIRELANE-NAT']);
        assert.equal((await chains.apply(sample())).written, 0);
        periodPasses();
        const refill = await chains.apply(sample());
        assert.deepEqual(refill.restores.map((r) => [r.family, r.writtenChains]), [[6, [{ table: 'nat', chain: 'WIRELANE-NAT' }]]]);
        assert.equal((await chainLines(ns!, kind, 6, 'nat', 'WIRELANE-NAT')).length, 2);

        // Same rule count, different rule: still noticed.
        await byHand(ns!, kind, 4, ['-t', 'filter', '-R', 'WIRELANE-FORWARD', '1', '-s', '10.66.0.0/16', '-j', 'ACCEPT']);
        periodPasses();
        const repair = await chains.apply(sample());
        assert.deepEqual(repair.restores.map((r) => [r.family, r.writtenChains]), [[4, [{ table: 'filter', chain: 'WIRELANE-FORWARD' }]]]);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'filter', 'WIRELANE-FORWARD'), ['-A WIRELANE-FORWARD -s 10.2.0.0/16 -j ACCEPT', '-A WIRELANE-FORWARD -d 10.2.0.0/16 -j ACCEPT']);
        assert.equal((await chains.apply(sample())).written, 0);
      });
    });

    test('a duplicated jump is collapsed back to one by the next full sync', async () => {
      await withNetns(['dupjump'], async ([ns]) => {
        const { chains, periodPasses } = counted(ns!);
        await chains.apply(sample());
        await byHand(ns!, kind, 4, ['-t', 'filter', '-I', 'FORWARD', '-m', 'comment', '--comment', 'wirelane: forward', '-j', 'WIRELANE-FORWARD']);
        periodPasses();
        const report = await chains.apply(sample());
        assert.deepEqual(report.restores[0]!.rewrittenJumps, [{ table: 'filter', chain: 'FORWARD' }]);
        assert.equal((await chainLines(ns!, kind, 4, 'filter', 'FORWARD')).length, 1);
      });
    });

    test('a partial restore that fails on a chain deleted by hand is followed at once by a full sync that repairs it', async () => {
      await withNetns(['failed'], async ([ns]) => {
        const { chains, counting } = counted(ns!);
        // WIRELANE-NAT jumps to WIRELANE-SUB; someone empties the one and deletes the other.
        const nested = (extra: string[]): DesiredRules => ({
          4: {
            chains: [natChain('WIRELANE-NAT', ['-d 10.2.0.0/16 -j WIRELANE-SUB', ...extra, '-j MASQUERADE']), natChain('WIRELANE-SUB', ['-j RETURN'])],
            jumps: [{ table: 'nat', from: 'POSTROUTING', to: 'WIRELANE-NAT', match: `-s ${PODS4}`, comment: 'wirelane: nat', position: 'append' }],
          },
        });
        await chains.apply(nested([]));
        await byHand(ns!, kind, 4, ['-t', 'nat', '-F', 'WIRELANE-NAT']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-F', 'WIRELANE-SUB']);
        await byHand(ns!, kind, 4, ['-t', 'nat', '-X', 'WIRELANE-SUB']);
        // The change rewrites WIRELANE-NAT only, whose jump to the missing WIRELANE-SUB fails the restore.
        const change = await counting(() => chains.apply(nested(['-d 10.3.0.0/16 -j RETURN'])));
        assert.equal(change.value.sync, 'partial');
        assert.deepEqual(change.value.recovered.map((r) => r.family), [4]);
        assert.match(change.value.recovered[0]!.error, /iptables/);
        assert.deepEqual([change.saves, change.restores], [2, 2], 'the failed restore, then a read, the repairing restore and a read');
        assert.deepEqual(change.value.restores[0]!.writtenChains.map((c) => c.chain).sort(), ['WIRELANE-NAT', 'WIRELANE-SUB']);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-SUB'), ['-A WIRELANE-SUB -j RETURN']);
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT')).length, 3);
        const idle = await counting(() => chains.apply(nested(['-d 10.3.0.0/16 -j RETURN'])));
        assert.deepEqual([idle.value.sync, idle.saves, idle.restores], ['partial', 0, 0]);
      });
    });

    test('a partial restore that fails on a jump deleted by hand from POSTROUTING is repaired at once', async () => {
      await withNetns(['failedjump'], async ([ns]) => {
        const { chains, counting } = counted(ns!);
        await chains.apply(sample());
        await byHand(ns!, kind, 4, ['-t', 'nat', '-D', 'POSTROUTING', '-s', PODS4, '-m', 'comment', '--comment', 'wirelane: nat', '-j', 'WIRELANE-NAT']);
        // A new pod CIDR: the jump group is rewritten, and deleting the old jump fails.
        const moved = sample();
        const v4 = moved[4]!;
        const rules: DesiredRules = { ...moved, 4: { ...v4, jumps: v4.jumps.map((j) => (j.from === 'POSTROUTING' ? { ...j, match: '-s 10.2.9.0/24' } : j)) } };
        const change = await counting(() => chains.apply(rules));
        assert.deepEqual(change.value.recovered.map((r) => r.family), [4]);
        assert.deepEqual(await chainLines(ns!, kind, 4, 'nat', 'POSTROUTING'), ['-A POSTROUTING -s 10.2.9.0/24 -m comment --comment "wirelane: nat" -j WIRELANE-NAT']);
        assert.equal((await chains.apply(rules)).written, 0);
      });
    });

    test('a new instance (agent restart) rewrites once, removes leftovers, then writes nothing', async () => {
      await withNetns(['restart'], async ([ns]) => {
        const old = open(ns!);
        await old.apply({ 4: { chains: [natChain('WIRELANE-NAT', ['-j MASQUERADE']), natChain('WIRELANE-OLD', ['-j RETURN'])], jumps: [] } });
        const fresh = open(ns!);
        const report = await fresh.apply(sample());
        assert.deepEqual(report.restores[0]!.deletedChains, [{ table: 'nat', chain: 'WIRELANE-OLD' }]);
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-OLD')).length, 0);
        assert.doesNotMatch(await saveText(ns!, kind, 4), /WIRELANE-OLD/);
        assert.equal((await fresh.apply(sample())).written, 0);
      });
    });

    test('cleanup removes every chain and jump of ours, in every table and family', async () => {
      await withNetns(['cleanup'], async ([ns]) => {
        const chains = open(ns!);
        await chains.apply(sample());
        const report = await chains.cleanup();
        assert.equal(report.written, 2);
        for (const family of [4, 6] as const) assert.doesNotMatch(await saveText(ns!, kind, family), /WIRELANE|wirelane/);
        assert.equal((await chains.cleanup()).written, 0);
        // After cleanup the instance starts from scratch.
        assert.equal((await chains.apply(sample())).written, 2);
        await chains.cleanup();
      });
    });

    test('a rule iptables rejects fails the apply with the offending line, and the next good apply repairs', async () => {
      await withNetns(['reject'], async ([ns]) => {
        const chains = open(ns!);
        await chains.apply(sample());
        await assert.rejects(chains.apply(sample(['-m nosuchmatch --nosuch -j RETURN'])), /-A WIRELANE-NAT -m nosuchmatch --nosuch -j RETURN/);
        assert.equal((await chainLines(ns!, kind, 4, 'nat', 'WIRELANE-NAT')).length, 2);
        const report = await chains.apply(sample());
        assert.ok(report.written >= 1);
        assert.equal((await chains.apply(sample())).written, 0);
      });
    });

    test('20,000 rule lines apply in one restore call, and re-apply is a no-op', async (t) => {
      await withNetns(['scale'], async ([ns]) => {
        // Times the restore calls alone, apart from the iptables-save reads around them.
        const restoreMs: number[] = [];
        const run: CommandRunner = async (file, args, opts) => {
          const started = performance.now();
          const result = await runCommand(file, args, opts);
          if (file.endsWith('-restore')) restoreMs.push(performance.now() - started);
          return result;
        };
        const chains = new IptablesChains({ netns: ns!, backend: iptablesBackend(kind), run });
        const many: OwnedChain[] = [];
        for (let s = 0; s < 1000; s++) {
          const rules: string[] = [];
          for (let r = 0; r < 20; r++) rules.push(`-d 10.${(s >> 8) & 255}.${s & 255}.${r + 1}/32 -p tcp -m tcp --dport ${1000 + r} -j RETURN`);
          many.push(natChain(`WIRELANE-S${s}`, rules));
        }
        const dispatch = natChain('WIRELANE-SERVICES', many.map((c) => `-j ${c.name}`));
        const desired: DesiredRules = {
          4: { chains: [dispatch, ...many], jumps: [{ table: 'nat', from: 'PREROUTING', to: 'WIRELANE-SERVICES', comment: 'wirelane: services', position: 'insert' }] },
        };
        let started = performance.now();
        const first = await chains.apply(desired);
        const firstMs = performance.now() - started;
        assert.equal(first.written, 1);
        const saved = await saveText(ns!, kind, 4);
        assert.equal(saved.split('\n').filter((l) => l.startsWith('-A WIRELANE-S')).length, 21_000);
        started = performance.now();
        assert.equal((await chains.apply(desired)).written, 0);
        const noopMs = performance.now() - started;
        const changed = { 4: { ...desired[4]!, chains: [dispatch, natChain('WIRELANE-S0', ['-j RETURN']), ...many.slice(1)] } };
        started = performance.now();
        const one = await chains.apply(changed);
        const oneMs = performance.now() - started;
        assert.deepEqual(one.restores[0]!.writtenChains, [{ table: 'nat', chain: 'WIRELANE-S0' }]);
        assert.equal(restoreMs.length, 2);
        const [fullRestore, oneRestore] = restoreMs.map((ms) => ms.toFixed(0));
        t.diagnostic(
          `${kind}: 21,000 lines: apply ${firstMs.toFixed(0)} ms (restore alone ${fullRestore} ms); no-op re-apply ${noopMs.toFixed(0)} ms; ` +
            `one-chain change ${oneMs.toFixed(0)} ms (restore alone ${oneRestore} ms)`,
        );
        await chains.cleanup();
      });
    });
  });
}

// A UDP echo server that answers with the address the datagram came from.
const ECHO_SERVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, peer) => s.send(peer.address, peer.port, peer.address));
s.bind(Number(process.argv[1]), () => process.stdout.write('ready\\n'));
`;
const ECHO_CLIENT = `
const [host, port] = process.argv.slice(1);
const s = require('node:dgram').createSocket('udp4');
const timer = setTimeout(() => { process.stdout.write('timeout'); process.exit(0); }, 3000);
s.on('message', (m) => { clearTimeout(timer); process.stdout.write(m.toString()); process.exit(0); });
s.send('who am i', Number(port), host);
`;
const ECHO_PORT = 7777;

describe('mesh NAT rules carry traffic', { skip }, () => {
  test('pod traffic leaving the mesh takes the node address; traffic to a mesh destination keeps the pod address', async () => {
    await withNetns(['pod', 'node', 'net'], async ([pod, node, net]) => {
      const ip = (ns: string, ...args: string[]) => runCommand('ip', ['-n', ns, ...args]);
      // pod (10.2.1.2) -- node (10.2.1.1 | 192.0.2.1) -- "internet" (192.0.2.2, and 10.9.0.1 standing in for a mesh peer)
      await ip(node!, 'link', 'add', 'to-pod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod!);
      await ip(node!, 'link', 'add', 'to-net', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', net!);
      await ip(pod!, 'addr', 'add', '10.2.1.2/24', 'dev', 'eth0');
      await ip(node!, 'addr', 'add', '10.2.1.1/24', 'dev', 'to-pod');
      await ip(node!, 'addr', 'add', '192.0.2.1/24', 'dev', 'to-net');
      await ip(net!, 'addr', 'add', '192.0.2.2/24', 'dev', 'eth0');
      await ip(net!, 'addr', 'add', '10.9.0.1/32', 'dev', 'lo');
      for (const [ns, dev] of [[pod, 'eth0'], [node, 'to-pod'], [node, 'to-net'], [net, 'eth0'], [pod, 'lo'], [net, 'lo']] as const) {
        await ip(ns!, 'link', 'set', dev, 'up');
      }
      await ip(pod!, 'route', 'add', 'default', 'via', '10.2.1.1');
      await ip(node!, 'route', 'add', '10.9.0.0/16', 'via', '192.0.2.2');
      // The "internet" can route back to pods, so only NAT explains seeing the node's address.
      await ip(net!, 'route', 'add', '10.2.0.0/16', 'via', '192.0.2.1');
      await runCommand('sysctl', ['-qw', 'net.ipv4.ip_forward=1'], { netns: node! });

      const server = spawnProcess(process.execPath, ['-e', ECHO_SERVER, String(ECHO_PORT)], { netns: net! });
      try {
        await waitForLine(server, 'ready');
        const whoAmI = async (host: string): Promise<string> =>
          (await runCommand(process.execPath, ['-e', ECHO_CLIENT, host, String(ECHO_PORT)], { netns: pod!, timeoutMs: 10_000 })).stdout;

        assert.equal(await whoAmI('192.0.2.2'), '10.2.1.2', 'without rules nothing is masqueraded');
        const chains = new IptablesChains({ netns: node! });
        const rules = computeMeshRules({
          localPodCidrs: [parseCidr('10.2.1.0/24')],
          meshDestinations: [parseCidr('10.2.0.0/16'), parseCidr('10.9.0.0/16')],
          forwardCidrs: [parseCidr('10.2.0.0/16')],
        });
        assert.equal((await chains.apply(rules)).written, 1);
        // Make FORWARD drop by default: only our ACCEPTs let pod traffic through.
        await runCommand('iptables', ['-P', 'FORWARD', 'DROP'], { netns: node! });
        assert.equal(await whoAmI('192.0.2.2'), '192.0.2.1', 'leaving the mesh: masqueraded to the node address');
        assert.equal(await whoAmI('10.9.0.1'), '10.2.1.2', 'inside the mesh: the pod address is kept');

        await chains.cleanup();
        assert.equal(await whoAmI('192.0.2.2'), 'timeout', 'without our FORWARD accepts the DROP policy applies');
      } finally {
        server.kill('SIGTERM');
        await server;
      }
    });
  });
});

async function waitForLine(child: ReturnType<typeof spawnProcess>, text: string): Promise<void> {
  const stdout = child.stdout;
  if (stdout === null) throw new Error('echo server: no stdout');
  let seen = '';
  const timeout = setTimeout(() => stdout.destroy(new Error(`echo server: no "${text}" within 10 s`)), 10_000);
  try {
    for await (const chunk of stdout) {
      seen += String(chunk);
      if (seen.includes(text)) return;
    }
    await once(stdout, 'close');
    throw new Error(`echo server exited before "${text}": ${seen}`);
  } finally {
    clearTimeout(timeout);
  }
}
