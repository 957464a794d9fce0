// Turning libbpf and syscall failures into JS exceptions, and capturing libbpf's log for them.
//
// libbpf_set_print is process-wide, so the print callback appends to a thread-local buffer that
// every entry point clears first (LogCapture). All calls run synchronously on the calling JS thread,
// so the buffer holds exactly the messages of the call that failed.
#pragma once

#include <napi.h>

#include <cerrno>
#include <string>

namespace wirelane {

// Per-environment state: the JS error factory and the native class constructors.
struct AddonData {
  Napi::FunctionReference error_factory;  // (message parts) => BpfError, set from TypeScript
  Napi::FunctionReference object_ctor;
  Napi::FunctionReference map_ctor;
  Napi::FunctionReference link_ctor;
};

AddonData& DataOf(Napi::Env env);

// Collects what libbpf prints on this thread while it lives (the outermost one starts empty).
// Text() is that log, or "" outside any capture, so an error raised before a call reached libbpf
// never carries an earlier call's log.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  static std::string Text();
};

void InstallLibbpfPrint();

// An exception for a failed call: `err` is a positive errno or one of libbpf's 4000+ codes.
// `context` names the object at fault (e.g. `map "services"`), `call` the function that failed.
Napi::Error BpfError(Napi::Env env, const std::string& context, const std::string& call, int err,
                     const std::string& detail = "");

// Thrown for state errors such as use after close(): errno EBADF.
inline Napi::Error ClosedError(Napi::Env env, const std::string& context, const std::string& call) {
  return BpfError(env, context, call, EBADF, "it is closed");
}

}  // namespace wirelane
