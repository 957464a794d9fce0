// wirelane_bpf: the N-API addon over libbpf. Every call is synchronous on the calling JS thread
// (BPF syscalls are fast, and it keeps libbpf's process-wide log callback per call), except an
// object's loadAsync(): the verifier takes a quarter second for a large object (object.cc).
#include <napi.h>
#include <v8.h>

#include <bpf/bpf.h>
#include <malloc.h>
#include <unistd.h>

#include "args.h"
#include "bpf_error.h"
#include "fd_kind.h"
#include "link.h"
#include "map.h"
#include "object.h"
#include "probe.h"
#include "program.h"
#include "tc.h"

namespace wirelane {

namespace {

// setErrorFactory(fn): fn({ context, call, errno, reason, log }) returns the Error to throw.
Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "error factory must be a function");
  DataOf(info.Env()).error_factory = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// Opens a pin and checks it holds the expected kind of object; returns the fd.
int OpenPin(Napi::Env env, const std::string& path, const std::string& kind) {
  LogCapture log;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) throw BpfError(env, "pin " + Quoted(path), "bpf_obj_get", fd);
  std::string found = FdKind(fd);
  if (found != kind) {
    close(fd);
    throw BpfError(env, "pin " + Quoted(path), "bpf_obj_get", EINVAL, "it holds a " + found + ", not a " + kind);
  }
  return fd;
}

Napi::Value OpenPinnedMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "pin path");
  return BpfMapWrap::FromFd(env, OpenPin(env, path, "bpf-map"), "pin " + Quoted(path));
}

Napi::Value OpenPinnedLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "pin path");
  return BpfLinkWrap::Create(env, OpenPin(env, path, "bpf-link"));
}

// releaseFreeHeap(): hands the free memory of both heaps back to the kernel. V8 is told of moderate
// memory pressure: it starts an incremental collection that compacts and unmaps the pages it keeps
// committed for later allocation (its own memory reducer rarely runs in an agent that allocates a
// little at every resync). glibc's malloc_trim releases free pages in the middle of its heap too,
// where freed HTTP chunks and parse buffers stay otherwise. True when the C heap gave pages back.
// (The one call past N-API: the addon is built against the Node that runs it.)
Napi::Value ReleaseFreeHeap(const Napi::CallbackInfo& info) {
  v8::Isolate::GetCurrent()->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
#ifdef __GLIBC__
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  InstallLibbpfPrint();
  data->object_ctor = Napi::Persistent(BpfObjectWrap::Define(env));
  data->map_ctor = Napi::Persistent(BpfMapWrap::Define(env));
  data->link_ctor = Napi::Persistent(BpfLinkWrap::Define(env));
  exports.Set("NativeObject", data->object_ctor.Value());
  exports.Set("NativeMap", data->map_ctor.Value());
  exports.Set("NativeLink", data->link_ctor.Value());
  exports.Set("setErrorFactory", Napi::Function::New<SetErrorFactory>(env, "setErrorFactory"));
  exports.Set("openPinnedMap", Napi::Function::New<OpenPinnedMap>(env, "openPinnedMap"));
  exports.Set("openPinnedLink", Napi::Function::New<OpenPinnedLink>(env, "openPinnedLink"));
  exports.Set("programInfoById", Napi::Function::New<ProgramInfoById>(env, "programInfoById"));
  exports.Set("openMapById", Napi::Function::New<OpenMapById>(env, "openMapById"));
  exports.Set("detachClsact", Napi::Function::New<DetachClsact>(env, "detachClsact"));
  exports.Set("queryClsact", Napi::Function::New<QueryClsact>(env, "queryClsact"));
  exports.Set("probeBpf", Napi::Function::New<ProbeBpf>(env, "probeBpf"));
  exports.Set("probeProgramType", Napi::Function::New<ProbeProgramType>(env, "probeProgramType"));
  exports.Set("probeMapType", Napi::Function::New<ProbeMapType>(env, "probeMapType"));
  exports.Set("probeHelper", Napi::Function::New<ProbeHelper>(env, "probeHelper"));
  exports.Set("probeTcx", Napi::Function::New<ProbeTcx>(env, "probeTcx"));
  exports.Set("typeNames", Napi::Function::New<TypeNames>(env, "typeNames"));
  exports.Set("releaseFreeHeap", Napi::Function::New<ReleaseFreeHeap>(env, "releaseFreeHeap"));
  return exports;
}

}  // namespace wirelane

// The macro pastes the init function's name into an identifier: it must be unqualified.
static Napi::Object InitWirelaneBpf(Napi::Env env, Napi::Object exports) { return wirelane::Init(env, exports); }

NODE_API_MODULE(wirelane_bpf, InitWirelaneBpf)
