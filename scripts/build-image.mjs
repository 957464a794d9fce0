#!/usr/bin/env node
// Builds the wirelane image on a machine that reaches only Debian's package archive and the npm
// registry (no container registry, so no base image to pull): a Debian root filesystem from
// mmdebstrap with the packages of image/packages.txt, Node.js, and the project built by
// scripts/setup.mjs in /opt/wirelane; podman turns it into an OCI archive. The Dockerfile builds the
// same image where a registry is at hand: both read image/packages.txt and run image/finish-rootfs.sh,
// and the Debian suite and Node.js major version are the Dockerfile's ARGs.
//
//   node scripts/build-image.mjs            build build/image/NAME-VERSION.oci.tar (root, Debian)
//   node scripts/build-image.mjs --name     print the image name (NAME:VERSION from package.json)
//   node scripts/build-image.mjs --archive  print the archive's path
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// The one place the image is named: package.json. deploy/ refers to the same NAME:VERSION (checked
// by test/deploy/install.test.ts). Container runtimes read an unqualified name as Docker Hub's
// library, so that is the name in the archive: kubelet then finds the loaded image as `NAME:VERSION`.
const IMAGE = `${pkg.name}:${pkg.version}`;
const QUALIFIED = `docker.io/library/${IMAGE}`;
const ARCHIVE = join(root, 'build', 'image', `${pkg.name}-${pkg.version}.oci.tar`);
// Downloaded .deb files, kept between builds (the archive is slow to reach from here).
const CACHE = '/var/tmp/wirelane-image-cache';

function log(message) {
  process.stderr.write(`build-image: ${message}\n`);
}

/** Thrown, not exited: the work directory is removed on the way out. */
function fail(message) {
  throw new Error(message);
}

function run(file, args, opts = {}) {
  const result = spawnSync(file, args, { stdio: 'inherit', cwd: root, ...opts });
  if (result.status !== 0) fail(`${file} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
  return result;
}

function output(file, args) {
  const result = spawnSync(file, args, { encoding: 'utf8', cwd: root });
  return result.status === 0 ? result.stdout : undefined;
}

/** The Dockerfile's `ARG NAME=VALUE`: the suite and the Node.js major are decided there, once. */
function dockerfileArg(name) {
  const match = new RegExp(`^ARG ${name}=(\\S+)$`, 'm').exec(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  if (match === null) fail(`Dockerfile: no ARG ${name}=...`);
  return match[1];
}

/** Lines of a list file without comments and blanks. */
function listFile(path) {
  return readFileSync(path, 'utf8').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => l !== '');
}

function installTools() {
  const tools = [['/usr/bin/mmdebstrap', 'mmdebstrap'], ['/usr/bin/podman', 'podman'], ['/usr/sbin/runc', 'runc']];
  const missing = tools.filter(([path]) => !existsSync(path)).map(([, p]) => p);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) fail(`missing Debian packages: ${missing.join(' ')}`);
  log(`installing ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-q'], { env });
  // runc: podman's default runtime crun refuses hosts with a hybrid cgroup layout (the image test runs it).
  run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env });
}

/** "20.5" from ">=20.5": the one form of engines.node this project uses. */
function minimumNode() {
  const match = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(pkg.engines?.node ?? '');
  if (match === null) fail(`package.json engines.node "${pkg.engines?.node}" is not ">=VERSION"`);
  return match[1];
}

function atLeast(version, minimum) {
  const a = version.split(/[.+~-]/).map(Number);
  const b = minimum.split('.').map(Number);
  for (let i = 0; i < b.length; i++) if ((a[i] ?? 0) !== b[i]) return (a[i] ?? 0) > b[i];
  return true;
}

/**
 * Debian's nodejs when the suite's version satisfies engines.node and is the Dockerfile's major;
 * otherwise this machine's own node binary (not Debian's: bookworm has 18), which the build has
 * just run on.
 */
function chooseNode(suite, major) {
  const minimum = minimumNode();
  const debian = (output('apt-cache', ['madison', 'nodejs']) ?? '')
    .split('\n')
    .map((line) => line.split('|').map((f) => f.trim()))
    .filter(([, , source]) => source !== undefined && new RegExp(`\\s${suite}(-[a-z]+)?/`).test(source))
    .map(([, version]) => version.replace(/^\d+:/, ''))
    .filter((v) => atLeast(v, minimum) && v.split('.')[0] === major);
  if (debian.length > 0) return { debianPackage: 'nodejs', why: `Debian's nodejs ${debian[0]} satisfies engines.node >=${minimum}` };
  const own = process.versions.node;
  if (!atLeast(own, minimum) || own.split('.')[0] !== major) fail(`Node.js ${own} is not ${major}.x >=${minimum} (Dockerfile ARG NODE_MAJOR, engines.node)`);
  return { binary: process.execPath, why: `Debian ${suite} has no nodejs ${major}.x >=${minimum}: copying this machine's node ${own}` };
}

/** apt sources for the image's suite, from the archives this machine's apt is configured with. */
function mirrorsFor(suite) {
  const dir = '/etc/apt/sources.list.d';
  const files = ['/etc/apt/sources.list', ...(existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [])]
    .filter((f) => existsSync(f) && /\.(list|sources)$/.test(f));
  const uris = new Set();
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^URIs:\s*(.+)$/gm)) m[1].split(/\s+/).forEach((u) => uris.add(u));
    for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) uris.add(m[1]);
  }
  const archives = [...uris].filter((u) => /\/debian(-security)?\/?$/.test(u));
  if (archives.length === 0) return []; // mmdebstrap's default archive
  return archives.flatMap((u) =>
    /-security\/?$/.test(u) ? [`deb ${u} ${suite}-security main`] : [`deb ${u} ${suite} main`, `deb ${u} ${suite}-updates main`],
  );
}

/** /opt/wirelane (the built project and its production dependencies), node, the iptables wrapper. */
function stage(dir, node) {
  const app = join(dir, 'opt', 'wirelane');
  mkdirSync(join(app, 'build', 'Release'), { recursive: true });
  mkdirSync(join(app, 'build', 'bpf'), { recursive: true });
  for (const f of ['package.json', 'package-lock.json']) copyFileSync(join(root, f), join(app, f));
  cpSync(join(root, 'bin'), join(app, 'bin'), { recursive: true });
  cpSync(join(root, 'dist'), join(app, 'dist'), { recursive: true, filter: (src) => !src.includes('.tsbuildinfo') });
  copyFileSync(join(root, 'build', 'Release', 'wirelane_bpf.node'), join(app, 'build', 'Release', 'wirelane_bpf.node'));
  const objects = readdirSync(join(root, 'build', 'bpf')).filter((f) => f.endsWith('.bpf.o'));
  if (objects.length === 0) fail('no BPF objects in build/bpf (does this kernel have BTF?)');
  for (const f of objects) copyFileSync(join(root, 'build', 'bpf', f), join(app, 'build', 'bpf', f));
  // Exactly the lockfile's production dependencies; the project itself has no install scripts.
  run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app });

  const sbin = join(dir, 'usr', 'sbin');
  mkdirSync(sbin, { recursive: true });
  copyFileSync(join(root, 'image', 'iptables-wrapper'), join(sbin, 'iptables-wrapper'));
  chmodSync(join(sbin, 'iptables-wrapper'), 0o755);
  if (node.binary !== undefined) {
    const bin = join(dir, 'usr', 'local', 'bin');
    mkdirSync(bin, { recursive: true });
    // Without its debug sections where binutils is at hand: a smaller image, the same code.
    const strip = spawnSync('strip', ['--strip-debug', '-o', join(bin, 'node'), node.binary]);
    if (strip.status !== 0) copyFileSync(node.binary, join(bin, 'node'));
    chmodSync(join(bin, 'node'), 0o755);
  }
}

/** A word for sh -c: the hooks below are shell commands. */
function quote(word) {
  return `'${word.replaceAll("'", "'\\''")}'`;
}

function rootfs(tar, stageDir, suite, packages) {
  mkdirSync(CACHE, { recursive: true });
  const excludes = ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/info/*', '/usr/share/locale/*'].map((p) => `--dpkgopt=path-exclude=${p}`);
  run('mmdebstrap', [
    // What debian:SUITE-slim, the Dockerfile's base, is made of: Priority required, and apt.
    '--variant=minbase',
    // Merged /usr without the usrmerge package, which pulls in perl.
    '--hook-dir=/usr/share/mmdebstrap/hooks/maybe-merged-usr',
    `--include=${packages.join(',')}`,
    ...excludes,
    '--dpkgopt=path-include=/usr/share/doc/*/copyright',
    // The .deb cache: in before the download, out after the install; the tarball gets none of it.
    '--skip=essential/unlink',
    `--setup-hook=mkdir -p "$1"/var/cache/apt/archives && cp -a ${quote(CACHE)}/. "$1"/var/cache/apt/archives/`,
    `--customize-hook=cp -a "$1"/var/cache/apt/archives/. ${quote(CACHE)}/ && rm -rf ${quote(CACHE)}/lock ${quote(CACHE)}/partial`,
    `--customize-hook=cp -a ${quote(stageDir)}/. "$1"/`,
    `--customize-hook=cp ${quote(join(root, 'image', 'finish-rootfs.sh'))} "$1"/tmp/ && chroot "$1" sh /tmp/finish-rootfs.sh && rm "$1"/tmp/finish-rootfs.sh`,
    suite,
    tar,
    ...mirrorsFor(suite),
  ]);
}

/** The image config both builds set (the Dockerfile's ENTRYPOINT, CMD, ENV and LABELs). */
function imageChanges() {
  return [
    'ENTRYPOINT ["/usr/local/bin/wirelane"]',
    'CMD ["--help"]',
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `LABEL org.opencontainers.image.title=${pkg.name}`,
    `LABEL org.opencontainers.image.version=${pkg.version}`,
    `LABEL org.opencontainers.image.licenses=${pkg.license}`,
  ].flatMap((c) => ['--change', c]);
}

function main() {
  if (process.argv.includes('--name')) return process.stdout.write(`${IMAGE}\n`);
  if (process.argv.includes('--archive')) return process.stdout.write(`${ARCHIVE}\n`);
  if (process.getuid?.() !== 0) fail('mmdebstrap and podman need root here');
  installTools();
  run(process.execPath, [join(root, 'scripts', 'setup.mjs')]);

  const suite = dockerfileArg('DEBIAN_SUITE');
  const node = chooseNode(suite, dockerfileArg('NODE_MAJOR'));
  log(node.why);
  const packages = [...listFile(join(root, 'image', 'packages.txt')), ...(node.debianPackage ? [node.debianPackage] : [])];

  const work = join('/var/tmp', `wirelane-image-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  try {
    stage(join(work, 'stage'), node);
    log(`root filesystem: Debian ${suite} with ${packages.join(' ')}`);
    rootfs(join(work, 'rootfs.tar'), join(work, 'stage'), suite, packages);
    mkdirSync(dirname(ARCHIVE), { recursive: true });
    rmSync(ARCHIVE, { force: true });
    // Through a podman storage of the build's own (podman's usual one stays as it was) and out again
    // as an OCI archive.
    const podman = ['--root', join(work, 'storage'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
    run('podman', [...podman, 'import', '--quiet', ...imageChanges(), join(work, 'rootfs.tar'), QUALIFIED], { stdio: ['ignore', 'ignore', 'inherit'] });
    run('podman', [...podman, 'save', '--quiet', '--format', 'oci-archive', '--output', ARCHIVE, QUALIFIED]);
    log(`${ARCHIVE} (${IMAGE}); load it with: podman load -i ${ARCHIVE}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  log(err.message);
  process.exitCode = 1;
}
