#include "bpf_error.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>

namespace wirelane {

namespace {

// Verifier logs can reach megabytes; the reason for a rejection is at the end, so keep the tail.
constexpr size_t kMaxLog = 1 << 20;

thread_local std::string log_text;
thread_local int captures = 0;

int CaptureLibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  // Debug output describes every relocation of a successful load: too costly to format per call.
  if (level == LIBBPF_DEBUG || captures == 0) return 0;
  char small[512];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(small, sizeof small, format, copy);
  va_end(copy);
  if (n < 0) return 0;
  if (static_cast<size_t>(n) < sizeof small) {
    log_text.append(small, n);
  } else {
    std::string big(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(big.data(), big.size(), format, args);
    big.resize(static_cast<size_t>(n));
    log_text += big;
  }
  if (log_text.size() > kMaxLog) log_text.erase(0, log_text.size() - kMaxLog);
  return n;
}

}  // namespace

AddonData& DataOf(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

LogCapture::LogCapture() {
  if (captures++ == 0) log_text.clear();
}

LogCapture::~LogCapture() {
  // A pool thread lives on after a load: a verifier log's megabyte is not kept for its next one.
  if (--captures == 0 && log_text.capacity() > (64 << 10)) std::string().swap(log_text);
}

std::string LogCapture::Text() { return captures > 0 ? log_text : std::string(); }

void InstallLibbpfPrint() { libbpf_set_print(CaptureLibbpfPrint); }

Napi::Error BpfError(Napi::Env env, const std::string& context, const std::string& call, int err,
                     const std::string& detail) {
  return BpfError(env, Failure{context, call, err, detail, LogCapture::Text()});
}

Napi::Error BpfError(Napi::Env env, const Failure& failure) {
  int err = failure.err < 0 ? -failure.err : failure.err;
  char reason[256];
  libbpf_strerror(err, reason, sizeof reason);
  const std::string& detail = failure.detail;
  AddonData& data = DataOf(env);
  if (!data.error_factory.IsEmpty()) {
    Napi::Object parts = Napi::Object::New(env);
    parts.Set("context", failure.context);
    parts.Set("call", failure.call);
    parts.Set("errno", err);
    parts.Set("reason", detail.empty() ? std::string(reason) : detail);
    parts.Set("log", failure.log);
    Napi::Value made = data.error_factory.Call({parts});
    if (made.IsObject()) return Napi::Error(env, made);
  }
  // Without the TypeScript wrapper (the addon required directly): a plain Error with the fields.
  std::string message = failure.context + ": " + failure.call + ": " + (detail.empty() ? reason : detail);
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("call", Napi::String::New(env, failure.call));
  error.Set("log", Napi::String::New(env, failure.log));
  return error;
}

}  // namespace wirelane
