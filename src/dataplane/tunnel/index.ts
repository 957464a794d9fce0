// The encapsulation device between nodes of one location: IPIP where the kernel has it, else VXLAN.
export {
  detectTunnelMode,
  DEFAULT_VXLAN_PORT,
  DEFAULT_VXLAN_VNI,
  IPIP_DEVICE,
  TunnelDevice,
  TunnelError,
  VXLAN_DEVICE,
  type TunnelApplyReport,
  type TunnelDeviceOptions,
  type TunnelMode,
} from './tunnel-device.js';
export { vxlanMacOf, type TunnelDesired, type TunnelMember } from './vxlan-forwarding.js';
