// A bpf_link behind a file descriptor this wrapper owns. Closing the fd of a link that is not pinned
// detaches it (the kernel drops the last reference), so the finalizer never closes it: a link that
// is neither pinned nor destroyed stays attached until the process exits.
#pragma once

#include <napi.h>

namespace wirelane {

class BpfLinkWrap : public Napi::ObjectWrap<BpfLinkWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Takes ownership of `fd`.
  static Napi::Object Create(Napi::Env env, int fd);
  explicit BpfLinkWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Fd(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Detach(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void RequireOpen(Napi::Env env, const char* call) const;

  int fd_ = -1;
};

}  // namespace wirelane
