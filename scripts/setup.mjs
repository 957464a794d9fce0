#!/usr/bin/env node
// Brings a machine with only Node.js and npm to where the demo and the tests run: Debian packages
// (when root), npm dependencies, the compiled TypeScript. Each step is skipped when already done.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
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
  ['/usr/bin/llc', 'llvm'],
  ['/usr/sbin/bpftool', 'bpftool'],
  ['/usr/include/bpf/libbpf.h', 'libbpf-dev'],
  ['/usr/include/libelf.h', 'libelf-dev'],
  ['/usr/include/zlib.h', 'zlib1g-dev'],
  ['/usr/bin/iperf3', 'iperf3'],
  ['/usr/bin/ping', 'iputils-ping'],
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

installSystemPackages();
installNodeModules();
buildTypeScript();
if (process.argv.includes('--verbose')) log(execFileSync('node', ['--version']).toString().trim());
