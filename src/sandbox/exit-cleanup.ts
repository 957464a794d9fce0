// Makes sure a Ctrl-C, a SIGTERM from a test runner, or a plain process exit does not leave
// sandboxes behind. Signals get the full async teardown and then exit 128+signo (130 for
// Ctrl-C); a process that exits on its own gets a synchronous best-effort teardown, which is
// all an 'exit' listener can do.

export interface ExitCleanable {
  destroy(): Promise<void>;
  /** Synchronous best effort, for the 'exit' event. */
  destroyNow(): void;
}

const live = new Set<ExitCleanable>();
let installed = false;
let signalled = false;

const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type HandledSignal = keyof typeof SIGNAL_EXIT_CODES;

function onSignal(signal: HandledSignal): void {
  const code = SIGNAL_EXIT_CODES[signal];
  // A second signal during teardown: stop waiting; the 'exit' listener still cleans up.
  if (signalled) process.exit(code);
  signalled = true;
  void Promise.allSettled([...live].map((s) => s.destroy())).then(() => process.exit(code));
}

function onExit(): void {
  for (const s of live) s.destroyNow();
}

const handlers = new Map<HandledSignal, () => void>(
  (Object.keys(SIGNAL_EXIT_CODES) as HandledSignal[]).map((sig) => [sig, () => onSignal(sig)]),
);

export function cleanUpOnExit(sandbox: ExitCleanable): void {
  live.add(sandbox);
  if (installed) return;
  installed = true;
  for (const [sig, handler] of handlers) process.on(sig, handler);
  process.on('exit', onExit);
}

export function forgetOnExit(sandbox: ExitCleanable): void {
  live.delete(sandbox);
  if (live.size > 0 || !installed) return;
  // Without listeners Node's default signal behaviour (die at once) comes back.
  installed = false;
  for (const [sig, handler] of handlers) process.off(sig, handler);
  process.off('exit', onExit);
}
