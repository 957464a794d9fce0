// Bench only (`npm run bench:memory -- --cpu-profile=DIR`): a CPU profile of the agent from its
// start, preloaded with `node --import` (plain JavaScript: the agent runs dist/ without a loader).
// The sampler sends the JS thread SIGPROF all the time, and the kernel's verifier gives up on a pending
// signal (EAGAIN). An object's load blocks signals for its thread itself (native/object.cc; the agent's
// loads run on the thread pool anyway), so they are sampled through; the addon's probes load their
// trivial programs without that, so the sampling pauses for them (each pause ends one profile file).
// The profiler writes the last file on SIGUSR2 (the bench sends it at the first complete sync) or at
// exit. The next SIGUSR2 starts profiling again and the one after it ends that (the bench's first idle
// phase).
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.WIRELANE_CPU_PROFILE_DIR;
if (dir === undefined || dir === '') throw new Error('agent-cpu-profile.mjs: set WIRELANE_CPU_PROFILE_DIR');
mkdirSync(dir, { recursive: true });

const session = new Session();
session.connect();
let running = false;
let done = false;
let part = 0;

// A same-thread session answers during post(): these run synchronously, before a program load.
function post(method, params) {
  let out;
  let failure;
  session.post(method, params, (err, result) => {
    failure = err;
    out = result;
  });
  if (failure) throw failure;
  return out;
}

function start() {
  if (running || done) return;
  post('Profiler.enable');
  post('Profiler.setSamplingInterval', { interval: 500 });
  post('Profiler.start');
  running = true;
}

function stop() {
  if (!running) return;
  const { profile } = post('Profiler.stop');
  running = false;
  part += 1;
  writeFileSync(join(dir, `agent-${process.pid}-${String(part).padStart(3, '0')}.cpuprofile`), JSON.stringify(profile));
  writeFileSync(join(dir, `agent-${process.pid}-unsampled.json`), `${JSON.stringify(gaps, null, 1)}\n`);
}

/** The unsampled stretches: what ran, from when (ms since the start), for how long. */
const gaps = [];

/** Runs `f` with the sampler off (a probe's program load: the verifier must not see SIGPROF). */
function unsampled(what, f) {
  return function (...args) {
    const was = running;
    stop();
    const at = performance.now();
    try {
      return f.apply(this, args);
    } finally {
      gaps.push({ what, atMs: Math.round(at), ms: Math.round(performance.now() - at) });
      if (was) start();
    }
  };
}

// The addon is a .node file loaded through process.dlopen: wrap its probes.
const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  const result = dlopen.call(this, module, filename, ...rest);
  const addon = module.exports;
  if (addon && typeof addon.NativeObject === 'function') {
    for (const name of Object.keys(addon)) if (name.startsWith('probe') && typeof addon[name] === 'function') addon[name] = unsampled(name, addon[name]);
  }
  return result;
};

// Allocations are sampled too: up to the first complete sync, and in the idle phase (what a resync
// with nothing changed allocates).
let sampling;
function startSampling(phase) {
  post('HeapProfiler.enable');
  post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  sampling = phase;
}
process.on('SIGUSR2', () => {
  if (done) {
    done = false;
    startSampling('idle');
    start();
    return;
  }
  stop();
  if (sampling !== undefined) {
    const { profile } = post('HeapProfiler.stopSampling');
    writeFileSync(join(dir, `agent-${process.pid}-${sampling}.heapprofile`), JSON.stringify(profile));
    sampling = undefined;
  }
  done = true;
});
process.on('exit', stop);
startSampling('first-sync');
start();
