// A BPF object file: opened, configured (constants, map sizes, pin paths), loaded, then the source
// of maps and programs to attach. Closing it closes its own fds only: maps handed out are dups, and
// attached programs are held by their links and filters.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

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

  bpf_object* obj_ = nullptr;
  bool loaded_ = false;
  std::string name_;
  // libbpf reads an in-memory object lazily until load, so it gets a copy that lives as long.
  std::vector<uint8_t> image_;
};

}  // namespace wirelane
