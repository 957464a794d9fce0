// Turning libbpf and syscall failures into JS exceptions, and capturing libbpf's log for them.
//
// libbpf_set_print is process-wide, so the print callback appends to a thread-local buffer that
// every entry point clears first (LogCapture). A call runs on the JS thread, or (an object's
// asynchronous load) on one of libuv's pool threads: each thread's buffer holds exactly the messages
// of its own call, so two loads at once never see each other's log.
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

// A failed call as plain data: made where the call ran (a pool thread too), turned into the JS
// error on the JS thread.
struct Failure {
  std::string context;
  std::string call;
  int err;  // positive errno or one of libbpf's 4000+ codes (a negative one is turned positive)
  std::string detail;
  std::string log;
};

void InstallLibbpfPrint();

// An exception for a failed call: `err` is a positive errno or one of libbpf's 4000+ codes.
// `context` names the object at fault (e.g. `map "services"`), `call` the function that failed.
// The log is this thread's capture (LogCapture::Text()).
Napi::Error BpfError(Napi::Env env, const std::string& context, const std::string& call, int err,
                     const std::string& detail = "");
Napi::Error BpfError(Napi::Env env, const Failure& failure);

// Thrown for state errors such as use after close(): errno EBADF.
inline Napi::Error ClosedError(Napi::Env env, const std::string& context, const std::string& call) {
  return BpfError(env, context, call, EBADF, "it is closed");
}

}  // namespace wirelane
