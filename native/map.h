// A BPF map behind a file descriptor this wrapper owns (a dup of an object's map fd, or one opened
// from a pin), so it outlives the object it came from.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wirelane {

struct MapDescription {
  int fd;  // owned by the wrapper
  std::string name;
  uint32_t type, key_size, value_size, max_entries, flags, id;
};

class BpfMapWrap : public Napi::ObjectWrap<BpfMapWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // A NativeMap that owns `fd`, described by the kernel (bpf_obj_get_info_by_fd). When the kernel
  // cannot describe it, `fd` is closed and a BpfError naming `context` thrown. `name` replaces the
  // kernel's name (cut to 15 characters) when given.
  static Napi::Object FromFd(Napi::Env env, int fd, const std::string& context, const std::string& name = "");
  explicit BpfMapWrap(const Napi::CallbackInfo& info);
  ~BpfMapWrap() override;

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Update(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Keys(const Napi::CallbackInfo& info);
  Napi::Value Entries(const Napi::CallbackInfo& info);
  Napi::Value UpdateBatch(const Napi::CallbackInfo& info);
  Napi::Value DeleteBatch(const Napi::CallbackInfo& info);
  Napi::Value BatchSupported(const Napi::CallbackInfo& info);
  Napi::Value Pin(const Napi::CallbackInfo& info);
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::string Context() const { return "map \"" + d_.name + "\""; }
  void RequireOpen(Napi::Env env, const char* call) const;
  void CheckKey(Napi::Env env, size_t length, const char* what) const;
  void CheckValue(Napi::Env env, size_t length, const char* what) const;
  // Entries in a batch whose keys are `keys_length` bytes back to back (RangeError if not whole).
  size_t BatchCount(Napi::Env env, size_t keys_length) const;
  // Bytes of one value as the syscalls read and write it (per-CPU maps hold one slot per CPU).
  size_t ValueBytes() const { return value_bytes_; }
  std::vector<uint8_t> NextKeys(Napi::Env env, size_t* count);
  // Detaches the buffer mmap() handed out, if it is still alive (close()).
  void DetachMapping();

  MapDescription d_{};
  size_t value_bytes_ = 0;
  int batch_ = -1;  // -1 unknown, 0 the kernel has no batch ops for this map, 1 batch worked
  // Weak: the buffer over this handle's mapping, which its finalizer unmaps; empty before mmap().
  Napi::Reference<Napi::ArrayBuffer> mapping_;
};

}  // namespace wirelane
