// A BPF object file: opened, configured (constants, map sizes, pin paths), loaded, then the source
// of maps and programs to attach. load() runs the kernel's verifier on the JS thread; loadAsync()
// runs the same load on libuv's thread pool and settles a Promise, the object being busy meanwhile. Closing it closes its own fds only: maps handed out are dups, and
// attached programs are held by their links and filters.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bpf_error.h"

struct bpf_object;
struct bpf_program;
struct bpf_map;

namespace wirelane {

class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit BpfObjectWrap(const Napi::CallbackInfo& info);
  ~BpfObjectWrap() override;

 private:
  Napi::Value Name(const Napi::CallbackInfo& info);
  Napi::Value Constants(const Napi::CallbackInfo& info);
  Napi::Value SetConstant(const Napi::CallbackInfo& info);
  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info);
  Napi::Value SetMapPinPath(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value LoadAsync(const Napi::CallbackInfo& info);
  Napi::Value Loaded(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value Programs(const Napi::CallbackInfo& info);
  Napi::Value Map(const Napi::CallbackInfo& info);
  Napi::Value ProgramInfo(const Napi::CallbackInfo& info);
  Napi::Value AttachCgroup(const Napi::CallbackInfo& info);
  Napi::Value AttachTcx(const Napi::CallbackInfo& info);
  Napi::Value AttachClsact(const Napi::CallbackInfo& info);
  Napi::Value RunIterator(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::string Context() const { return "object \"" + name_ + "\""; }
  void RequireOpen(Napi::Env env, const char* call) const;
  void RequireLoaded(Napi::Env env, const char* call) const;
  void RequireNotLoaded(Napi::Env env, const char* call) const;
  bpf_map* FindMap(Napi::Env env, const std::string& name, const char* call) const;
  bpf_program* FindProgram(Napi::Env env, const std::string& name, const char* call) const;
  int ProgramFd(Napi::Env env, const std::string& name, const char* call) const;
  // Records a load's outcome (on the JS thread); the error to throw or reject with when it failed.
  std::optional<Napi::Error> FinishLoad(Napi::Env env, const std::optional<Failure>& failed);
  Napi::Error BusyError(Napi::Env env, const char* call) const;

  friend class LoadWorker;

  bpf_object* obj_ = nullptr;
  bool loaded_ = false;
  // A loadAsync() in flight: a pool thread uses obj_, so every other call fails (EBUSY) until it settles.
  bool loading_ = false;
  std::string name_;
  // libbpf reads an in-memory object lazily until load, so it gets a copy that lives as long.
  std::vector<uint8_t> image_;
};

}  // namespace wirelane
