// Argument checks shared by the native entry points: a wrong argument is a TypeError or RangeError
// that names the argument, never a crash.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace wirelane {

struct Bytes {
  const uint8_t* data;
  size_t length;
};

inline std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  }
  std::string value = info[i].As<Napi::String>().Utf8Value();
  if (value.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must not contain NUL characters");
  }
  return value;
}

inline bool IsBytes(const Napi::Value& value) {
  return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

inline Bytes BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !IsBytes(info[i])) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer or Uint8Array");
  }
  Napi::Uint8Array array = info[i].As<Napi::Uint8Array>();
  return {array.Data(), array.ByteLength()};
}

inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what, uint32_t fallback) {
  if (info.Length() <= i || info[i].IsUndefined()) return fallback;
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double value = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(value) || value != std::floor(value) || value < 0 || value > 4294967295.0) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer from 0 to 4294967295, got " +
                                                info[i].ToString().Utf8Value());
  }
  return static_cast<uint32_t>(value);
}

inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  }
  return U32Arg(info, i, what, 0);
}

inline std::string Quoted(const std::string& text) { return "\"" + text + "\""; }

}  // namespace wirelane
