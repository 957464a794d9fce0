// tc attachment of a program to an interface: a tcx bpf_link where the kernel has tcx (6.6+), or a
// filter on a clsact qdisc. The clsact qdisc is shared with other users, so only our own filter is
// ever removed, never the qdisc.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace wirelane {

// BPF_TCX_INGRESS / BPF_TCX_EGRESS: not in libbpf 1.1 nor in Debian's uapi headers; kernels have
// had them since 6.6.
constexpr int kTcxIngress = 46;
constexpr int kTcxEgress = 47;

struct TcTarget {
  std::string ifname;    // empty when given by index
  uint32_t ifindex = 0;  // resolved inside the namespace
  std::string netns;     // path such as /var/run/netns/NAME, empty for the caller's namespace
  bool ingress = true;
  std::string Describe() const;
};

// Reads { interface: string | number, direction: 'ingress' | 'egress', netns?: string }.
TcTarget TcTargetArg(const Napi::CallbackInfo& info, size_t i);

// Returns the new link's fd.
int AttachTcx(Napi::Env env, int prog_fd, TcTarget target);
// Returns { ifindex, handle, priority, progId, createdQdisc }.
// replace: swap the program of the filter at handle/priority in place (BPF_TC_F_REPLACE), with no
// moment without one; otherwise an existing filter there is EEXIST.
Napi::Object AttachClsact(Napi::Env env, int prog_fd, TcTarget target, uint32_t handle, uint32_t priority, bool replace);

Napi::Value DetachClsact(const Napi::CallbackInfo& info);
Napi::Value QueryClsact(const Napi::CallbackInfo& info);

}  // namespace wirelane
