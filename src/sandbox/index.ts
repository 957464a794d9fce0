// The network-namespace sandbox: a simulated cluster for the demo and the integration tests.
export {
  createSandbox,
  withSandbox,
  Sandbox,
  type NetnsTarget,
  type SandboxHost,
  type SandboxNode,
  type SandboxOptions,
  type SandboxPod,
  type SandboxRouter,
} from './sandbox.js';
export {
  buildPhasesOf,
  managementRuleset,
  managementSubnetOf,
  planSandbox,
  MANAGEMENT_GATEWAY,
  SANDBOX_PREFIX_PATTERN,
  SandboxSpecError,
  type OutsideHostSpec,
  type PodNetwork,
  type SandboxNodeSpec,
  type SandboxPlan,
  type SandboxSpec,
} from './plan.js';
export { routerRuleset, udpDropCommand, type InternetSpec, type LanSpec, type RouterSpec } from './internet-plan.js';
export { isReachable, probeTcp, UNUSED_PORT, type TcpProbeResult } from './probe.js';
export { sweepLeftoverSandboxes, type SweepReport } from './sweep.js';
export { sandboxUnsupportedReason } from './support.js';
export { stopProcess } from './teardown.js';
