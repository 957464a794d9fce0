#include "link.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include "args.h"
#include "bpf_error.h"

namespace wirelane {

Napi::Function BpfLinkWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeLink",
                     {
                         InstanceMethod<&BpfLinkWrap::Fd>("fd"),
                         InstanceMethod<&BpfLinkWrap::Info>("info"),
                         InstanceMethod<&BpfLinkWrap::Pin>("pin"),
                         InstanceMethod<&BpfLinkWrap::Update>("update"),
                         InstanceMethod<&BpfLinkWrap::Detach>("detach"),
                         InstanceMethod<&BpfLinkWrap::Close>("close"),
                     });
}

// The wrapper owns the fd from here on; if it cannot be made, nothing else will close the fd.
Napi::Object BpfLinkWrap::Create(Napi::Env env, int fd) {
  try {
    return DataOf(env).link_ctor.New({Napi::External<int>::New(env, &fd)});
  } catch (...) {
    close(fd);
    throw;
  }
}

BpfLinkWrap::BpfLinkWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfLinkWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeLink is made by the addon (attach, openPinnedLink), not by new");
  }
  fd_ = *info[0].As<Napi::External<int>>().Data();
}

void BpfLinkWrap::RequireOpen(Napi::Env env, const char* call) const {
  if (fd_ < 0) throw ClosedError(env, "link", call);
}

Napi::Value BpfLinkWrap::Fd(const Napi::CallbackInfo& info) {
  if (fd_ < 0) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), fd_);
}

Napi::Value BpfLinkWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "bpf_obj_get_info_by_fd");
  LogCapture log;
  bpf_link_info link{};
  uint32_t length = sizeof link;
  int err = bpf_obj_get_info_by_fd(fd_, &link, &length);
  if (err != 0) throw BpfError(env, "link", "bpf_obj_get_info_by_fd", err);
  const char* type = libbpf_bpf_link_type_str(static_cast<bpf_link_type>(link.type));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", link.id);
  out.Set("type", link.type);
  // Link types newer than this libbpf (tcx is 11) have no name here.
  out.Set("typeName", type == nullptr ? (link.type == 11 ? "tcx" : "unknown") : type);
  out.Set("progId", link.prog_id);
  return out;
}

Napi::Value BpfLinkWrap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  RequireOpen(env, "bpf_obj_pin");
  LogCapture log;
  int err = bpf_obj_pin(fd_, path.c_str());
  if (err != 0) throw BpfError(env, "link pin " + Quoted(path), "bpf_obj_pin", err);
  return env.Undefined();
}

// update(progFd, expectedProgId?): swaps the link's program for another in one step (bpf_link_update):
// the hook never runs without a program. With expectedProgId the swap happens only while the link
// still runs that program (BPF_F_REPLACE; EPERM otherwise), so two agents cannot undo each other.
Napi::Value BpfLinkWrap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t prog_fd = U32Arg(info, 0, "program fd");
  bool expect = info.Length() > 1 && !info[1].IsUndefined();
  uint32_t expected_id = expect ? U32Arg(info, 1, "expected program id") : 0;
  RequireOpen(env, "bpf_link_update");
  LogCapture log;
  int old_fd = -1;
  if (expect) {
    old_fd = bpf_prog_get_fd_by_id(expected_id);
    if (old_fd < 0) throw BpfError(env, "link (expected program id " + std::to_string(expected_id) + ")", "bpf_prog_get_fd_by_id", errno);
  }
  LIBBPF_OPTS(bpf_link_update_opts, opts, .flags = expect ? static_cast<__u32>(BPF_F_REPLACE) : 0u,
              .old_prog_fd = expect ? static_cast<__u32>(old_fd) : 0u);
  int err = bpf_link_update(fd_, static_cast<int>(prog_fd), &opts);
  if (old_fd >= 0) close(old_fd);
  if (err != 0) throw BpfError(env, "link", "bpf_link_update", err);
  return env.Undefined();
}

// Detaches the program now, whoever else holds the link (pins, other processes); the link object
// stays valid but defunct until its fds are closed and its pins removed.
Napi::Value BpfLinkWrap::Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "bpf_link_detach");
  LogCapture log;
  int err = bpf_link_detach(fd_);
  if (err != 0) throw BpfError(env, "link", "bpf_link_detach", err);
  return env.Undefined();
}

Napi::Value BpfLinkWrap::Close(const Napi::CallbackInfo& info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

}  // namespace wirelane
