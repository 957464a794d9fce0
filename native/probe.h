// What the kernel offers, asked cheaply: each probe loads at most a trivial program and creates
// nothing that outlives the call.
#pragma once

#include <napi.h>

namespace wirelane {

Napi::Value ProbeBpf(const Napi::CallbackInfo& info);
Napi::Value ProbeProgramType(const Napi::CallbackInfo& info);
Napi::Value ProbeMapType(const Napi::CallbackInfo& info);
Napi::Value ProbeHelper(const Napi::CallbackInfo& info);
Napi::Value ProbeTcx(const Napi::CallbackInfo& info);
Napi::Value TypeNames(const Napi::CallbackInfo& info);

}  // namespace wirelane
