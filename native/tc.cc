#include "tc.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include "args.h"
#include "bpf_error.h"
#include "netns.h"

namespace wirelane {

namespace {

// Resolves the interface name to its index in the namespace the thread is in now.
void ResolveIfindex(Napi::Env env, TcTarget& target) {
  if (target.ifname.empty()) return;
  unsigned index = if_nametoindex(target.ifname.c_str());
  if (index == 0) throw BpfError(env, target.Describe(), "if_nametoindex", errno);
  target.ifindex = index;
}

bpf_tc_hook HookOf(const TcTarget& target) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(target.ifindex),
              .attach_point = target.ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  return hook;
}

void CheckFilterId(const Napi::CallbackInfo& info, uint32_t handle, uint32_t priority) {
  if (handle == 0 || priority == 0 || priority > 0xffff) {
    throw Napi::RangeError::New(info.Env(), "a tc filter is named by a handle (> 0) and a priority (1-65535), got handle " +
                                                std::to_string(handle) + " priority " + std::to_string(priority));
  }
}

}  // namespace

std::string TcTarget::Describe() const {
  std::string text = "interface " + (ifname.empty() ? "#" + std::to_string(ifindex) : Quoted(ifname));
  if (!netns.empty()) text += " in netns " + Quoted(netns);
  return text + (ingress ? " ingress" : " egress");
}

TcTarget TcTargetArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsObject()) {
    throw Napi::TypeError::New(env, "tc target must be an object { interface, direction, netns? }");
  }
  Napi::Object object = info[i].As<Napi::Object>();
  TcTarget target;
  Napi::Value interface = object.Get("interface");
  if (interface.IsString()) {
    target.ifname = interface.As<Napi::String>().Utf8Value();
    if (target.ifname.empty() || target.ifname.size() >= IF_NAMESIZE || target.ifname.find('\0') != std::string::npos) {
      throw Napi::TypeError::New(env, "tc target interface " + Quoted(target.ifname) + " is not an interface name");
    }
  } else if (interface.IsNumber() && interface.As<Napi::Number>().DoubleValue() >= 1 &&
             interface.As<Napi::Number>().DoubleValue() <= 2147483647.0 &&
             interface.As<Napi::Number>().DoubleValue() == static_cast<double>(interface.As<Napi::Number>().Int64Value())) {
    target.ifindex = interface.As<Napi::Number>().Uint32Value();
  } else {
    throw Napi::TypeError::New(env, "tc target interface must be a name or an ifindex (a positive integer)");
  }
  Napi::Value direction = object.Get("direction");
  std::string dir = direction.IsString() ? direction.As<Napi::String>().Utf8Value() : "";
  if (dir != "ingress" && dir != "egress") {
    throw Napi::TypeError::New(env, "tc target direction must be \"ingress\" or \"egress\"");
  }
  target.ingress = dir == "ingress";
  Napi::Value netns = object.Get("netns");
  if (!netns.IsUndefined()) {
    if (!netns.IsString() || netns.As<Napi::String>().Utf8Value().empty()) {
      throw Napi::TypeError::New(env, "tc target netns must be a path such as /var/run/netns/NAME");
    }
    target.netns = netns.As<Napi::String>().Utf8Value();
    if (target.netns.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "tc target netns must not contain NUL");
  }
  return target;
}

int AttachTcx(Napi::Env env, int prog_fd, TcTarget target) {
  NetnsScope scope(env, target.netns);
  ResolveIfindex(env, target);
  LogCapture log;
  int fd = bpf_link_create(prog_fd, static_cast<int>(target.ifindex),
                           static_cast<bpf_attach_type>(target.ingress ? kTcxIngress : kTcxEgress), nullptr);
  if (fd < 0) throw BpfError(env, "tcx " + target.Describe(), "bpf_link_create", fd);
  return fd;
}

Napi::Object AttachClsact(Napi::Env env, int prog_fd, TcTarget target, uint32_t handle, uint32_t priority, bool replace) {
  NetnsScope scope(env, target.netns);
  ResolveIfindex(env, target);
  LogCapture log;
  bpf_tc_hook hook = HookOf(target);
  int err = bpf_tc_hook_create(&hook);
  bool created = err == 0;
  if (err != 0 && err != -EEXIST) throw BpfError(env, "clsact " + target.Describe(), "bpf_tc_hook_create", err);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u, .prog_id = 0,
              .handle = handle, .priority = priority);
  err = bpf_tc_attach(&hook, &opts);
  if (err != 0) throw BpfError(env, "clsact " + target.Describe(), "bpf_tc_attach", err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", target.ifindex);
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  out.Set("progId", opts.prog_id);
  out.Set("createdQdisc", created);
  return out;
}

// detachClsact(target, handle, priority): true when the filter was removed, false when it was not
// there. The qdisc stays, whoever else uses it.
Napi::Value DetachClsact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget target = TcTargetArg(info, 0);
  uint32_t handle = U32Arg(info, 1, "handle");
  uint32_t priority = U32Arg(info, 2, "priority");
  CheckFilterId(info, handle, priority);
  NetnsScope scope(env, target.netns);
  ResolveIfindex(env, target);
  LogCapture log;
  bpf_tc_hook hook = HookOf(target);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = 0, .flags = 0, .prog_id = 0, .handle = handle, .priority = priority);
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err != 0) throw BpfError(env, "clsact " + target.Describe(), "bpf_tc_detach", err);
  return Napi::Boolean::New(env, true);
}

// queryClsact(target, handle, priority): the id of the program in that filter, or undefined.
Napi::Value QueryClsact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  TcTarget target = TcTargetArg(info, 0);
  uint32_t handle = U32Arg(info, 1, "handle");
  uint32_t priority = U32Arg(info, 2, "priority");
  CheckFilterId(info, handle, priority);
  NetnsScope scope(env, target.netns);
  ResolveIfindex(env, target);
  LogCapture log;
  bpf_tc_hook hook = HookOf(target);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = 0, .flags = 0, .prog_id = 0, .handle = handle, .priority = priority);
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT) return env.Undefined();
  if (err != 0) throw BpfError(env, "clsact " + target.Describe(), "bpf_tc_query", err);
  return Napi::Number::New(env, opts.prog_id);
}

}  // namespace wirelane
