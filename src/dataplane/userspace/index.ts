// `--service-proxy userspace`: proxy sockets in this process plus nat "portal" rules.
export { UserspaceServiceProxy, type UserspaceProxyOptions, type UserspaceProxyStats } from './userspace-proxy.js';
export { USERSPACE_OWNER } from './portal-rules.js';
export { type PortRange, PortRangeError } from './proxy-ports.js';
export { DEFAULT_UDP_IDLE_TIMEOUT_MS } from './udp-proxy.js';
export { DIAL_TIMEOUTS_MS } from './tcp-proxy.js';
export { raiseOpenFileLimit, WANTED_OPEN_FILES, type OpenFileLimitOutcome } from './open-file-limit.js';
