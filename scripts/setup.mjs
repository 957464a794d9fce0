#!/usr/bin/env node
// Brings a machine with only Node.js and npm to where the demo and the tests run: Debian packages
// (when root), npm dependencies, the compiled TypeScript. Each step is skipped when already done.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// What the project runs or builds against, and the Debian package that provides it.
const SYSTEM = [
  ['/usr/sbin/ip', 'iproute2'],
  ['/usr/bin/wg', 'wireguard-tools'],
  ['/usr/bin/wireguard-go', 'wireguard-go'],
  ['/usr/sbin/iptables', 'iptables'],
  ['/usr/sbin/nft', 'nftables'],
  ['/usr/sbin/conntrack', 'conntrack'],
  ['/usr/bin/dot', 'graphviz'],
  ['/usr/bin/clang', 'clang'],
  ['/usr/bin/gcc', 'gcc'],
  ['/usr/bin/llc', 'llvm'],
  ['/usr/sbin/bpftool', 'bpftool'],
  ['/usr/include/bpf/libbpf.h', 'libbpf-dev'],
  ['/usr/include/libelf.h', 'libelf-dev'],
  ['/usr/include/zlib.h', 'zlib1g-dev'],
  ['/usr/bin/iperf3', 'iperf3'],
  ['/usr/bin/sockperf', 'sockperf'],
  ['/usr/bin/ping', 'iputils-ping'],
  ['/usr/sbin/sysctl', 'procps'],
  ['/usr/bin/curl', 'curl'],
  // The standard CNI plugins: the sandbox makes its pods with them, as a kubelet's runtime would.
  ['/usr/lib/cni/bridge', 'containernetworking-plugins'],
];

function log(message) {
  process.stderr.write(`setup: ${message}\n`);
}

function run(file, args, opts = {}) {
  const result = spawnSync(file, args, { stdio: 'inherit', cwd: root, ...opts });
  if (result.status !== 0) {
    log(`${file} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
    process.exit(1);
  }
}

function installSystemPackages() {
  const missing = [...new Set(SYSTEM.filter(([path]) => !existsSync(path)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    log(`missing Debian packages: ${missing.join(' ')} (run as root on Debian to install them)`);
    return;
  }
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-q'], { env });
  run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
}

function installNodeModules() {
  const stamp = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= statSync(lock).mtimeMs) return;
  log('npm ci');
  run('npm', ['ci', '--no-fund', '--no-audit']);
}

function buildTypeScript() {
  // tsc's incremental build info makes an up-to-date build a quick no-op.
  run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json']);
}

// The libbpf addon (build/Release/wirelane_bpf.node, by node-gyp against this machine's Node
// headers) and the BPF objects: bpf/NAME.bpf.c -> build/bpf/NAME.bpf.o and
// test/fixtures/bpf/NAME.bpf.c -> build/bpf/fixtures/NAME.bpf.o, compiled by clang with CO-RE
// against build/bpf/vmlinux.h (dumped from this kernel's BTF). Each output is rebuilt only when a
// source is newer. package.json has "gypfile": false so that npm ci does not run `node-gyp rebuild`,
// which would also wipe build/bpf.
function buildBpf() {
  const newest = (paths) => Math.max(0, ...paths.filter((p) => existsSync(p)).map((p) => statSync(p).mtimeMs));
  const stale = (output, inputs) => !existsSync(output) || statSync(output).mtimeMs < newest(inputs);
  const filesIn = (dir, suffix) =>
    existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(suffix)).map((f) => join(dir, f)) : [];

  const addon = join(root, 'build', 'Release', 'wirelane_bpf.node');
  const gyp = join(root, 'binding.gyp');
  if (stale(addon, [gyp, ...filesIn(join(root, 'native'), '.cc'), ...filesIn(join(root, 'native'), '.h')])) {
    // npm run-scripts name npm's own node-gyp and the headers; run directly, find them the same way.
    const nodeGyp =
      process.env.npm_config_node_gyp ??
      join(execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    const prefix = dirname(dirname(process.execPath));
    const nodedir = process.env.npm_config_nodedir ?? (existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
    if (nodedir === undefined) log('no Node headers beside this node binary: node-gyp will try to download them');
    const gypArgs = nodedir === undefined ? [] : [`--nodedir=${nodedir}`];
    log('building the libbpf addon');
    if (stale(join(root, 'build', 'Makefile'), [gyp])) run(process.execPath, [nodeGyp, 'configure', ...gypArgs]);
    run(process.execPath, [nodeGyp, 'build', '--jobs=max', ...gypArgs]);
  }

  // Fixtures in a subdirectory (test/fixtures/bpf/DIR/NAME.bpf.c -> build/bpf/fixtures/DIR/) are
  // whole sets of objects, e.g. an older build of bpf/ for the upgrade tests: they may include the
  // sources in bpf/, so those count as their inputs too.
  const fixtures = join(root, 'test', 'fixtures', 'bpf');
  const fixtureSets = existsSync(fixtures) ? readdirSync(fixtures, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name) : [];
  const objects = [
    ...filesIn(join(root, 'bpf'), '.bpf.c').map((src) => [src, join(root, 'build', 'bpf')]),
    ...filesIn(fixtures, '.bpf.c').map((src) => [src, join(root, 'build', 'bpf', 'fixtures')]),
    ...fixtureSets.flatMap((set) => filesIn(join(fixtures, set), '.bpf.c').map((src) => [src, join(root, 'build', 'bpf', 'fixtures', set)])),
  ];
  const vmlinux = join(root, 'build', 'bpf', 'vmlinux.h');
  if (!existsSync(vmlinux)) {
    if (!existsSync('/sys/kernel/btf/vmlinux')) {
      log('skipping the BPF objects: this kernel has no BTF (/sys/kernel/btf/vmlinux)');
      return;
    }
    mkdirSync(dirname(vmlinux), { recursive: true });
    const dump = spawnSync('bpftool', ['btf', 'dump', 'file', '/sys/kernel/btf/vmlinux', 'format', 'c'], {
      maxBuffer: 256 << 20,
    });
    if (dump.status !== 0) {
      log(`bpftool btf dump failed: ${dump.stderr?.toString().trim() ?? dump.error?.message}`);
      process.exit(1);
    }
    writeFileSync(vmlinux, dump.stdout);
  }
  const arch = { x64: 'x86', arm64: 'arm64', s390x: 's390', ppc64: 'powerpc' }[process.arch] ?? process.arch;
  const shared = join(root, 'bpf', 'include');
  for (const [src, outDir] of objects) {
    const out = join(outDir, src.split('/').pop().replace(/\.c$/, '.o'));
    const headers = [...filesIn(dirname(src), '.h'), ...filesIn(shared, '.h'), vmlinux, ...(src.startsWith(fixtures) ? filesIn(join(root, 'bpf'), '.bpf.c') : [])];
    if (!stale(out, [src, ...headers])) continue;
    mkdirSync(outDir, { recursive: true });
    log(`clang ${src.slice(root.length + 1)}`);
    const includes = [dirname(vmlinux), shared, dirname(src)].filter((d) => existsSync(d)).map((d) => `-I${d}`);
    run('clang', ['-g', '-O2', '-target', 'bpf', `-D__TARGET_ARCH_${arch}`, ...includes, '-c', src, '-o', out]);
  }
}

// The benchmarks' load client and echo server (bench/client/wl-bench.c -> build/bench/wl-bench).
function buildBenchClient() {
  const src = join(root, 'bench', 'client', 'wl-bench.c');
  const out = join(root, 'build', 'bench', 'wl-bench');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return;
  mkdirSync(dirname(out), { recursive: true });
  log('gcc bench/client/wl-bench.c');
  run('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, src]);
}

installSystemPackages();
installNodeModules();
buildBpf();
buildBenchClient();
buildTypeScript();
if (process.argv.includes('--verbose')) log(execFileSync('node', ['--version']).toString().trim());
