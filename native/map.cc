#include "map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "args.h"
#include "bpf_error.h"

namespace wirelane {

namespace {

// The kernel's internal "operation not supported" (no batch ops for this map type); not in libc.
constexpr int kENOTSUPP = 524;

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool BatchUnsupported(int err) { return err == -EINVAL || err == -kENOTSUPP || err == -EOPNOTSUPP; }

const char* TypeName(uint32_t type) {
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return name == nullptr ? "unknown" : name;
}

// Describes the map behind `fd` from the kernel; returns 0 or -errno.
int DescribeMapFd(int fd, MapDescription* out) {
  bpf_map_info info{};
  uint32_t length = sizeof info;
  int err = bpf_obj_get_info_by_fd(fd, &info, &length);
  if (err != 0) return err;
  out->fd = fd;
  out->name = info.name;
  out->type = info.type;
  out->key_size = info.key_size;
  out->value_size = info.value_size;
  out->max_entries = info.max_entries;
  out->flags = info.map_flags;
  out->id = info.id;
  return 0;
}

}  // namespace

Napi::Function BpfMapWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeMap",
                     {
                         InstanceMethod<&BpfMapWrap::Info>("info"),
                         InstanceMethod<&BpfMapWrap::Lookup>("lookup"),
                         InstanceMethod<&BpfMapWrap::Update>("update"),
                         InstanceMethod<&BpfMapWrap::Delete>("delete"),
                         InstanceMethod<&BpfMapWrap::Keys>("keys"),
                         InstanceMethod<&BpfMapWrap::Entries>("entries"),
                         InstanceMethod<&BpfMapWrap::UpdateBatch>("updateBatch"),
                         InstanceMethod<&BpfMapWrap::DeleteBatch>("deleteBatch"),
                         InstanceMethod<&BpfMapWrap::BatchSupported>("batchSupported"),
                         InstanceMethod<&BpfMapWrap::Pin>("pin"),
                         InstanceMethod<&BpfMapWrap::Mmap>("mmap"),
                         InstanceMethod<&BpfMapWrap::Close>("close"),
                     });
}

Napi::Object BpfMapWrap::FromFd(Napi::Env env, int fd, const std::string& context, const std::string& name) {
  LogCapture log;
  MapDescription description;
  int err = DescribeMapFd(fd, &description);
  if (err != 0) {
    close(fd);
    throw BpfError(env, context, "bpf_obj_get_info_by_fd", err);
  }
  if (!name.empty()) description.name = name;
  try {
    return DataOf(env).map_ctor.New({Napi::External<MapDescription>::New(env, &description)});
  } catch (...) {
    close(fd);  // no wrapper owns it
    throw;
  }
}

BpfMapWrap::BpfMapWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfMapWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeMap is made by the addon (openPinnedMap, object.map), not by new");
  }
  d_ = *info[0].As<Napi::External<MapDescription>>().Data();
  value_bytes_ = d_.value_size;
  if (IsPerCpu(d_.type)) {
    int cpus = libbpf_num_possible_cpus();
    value_bytes_ = ((d_.value_size + 7) / 8) * 8 * static_cast<size_t>(cpus > 0 ? cpus : 1);
  }
}

// Closes only the map's fd: the map itself lives on while a program, a pin or another fd holds it.
BpfMapWrap::~BpfMapWrap() {
  if (d_.fd >= 0) close(d_.fd);
}

void BpfMapWrap::RequireOpen(Napi::Env env, const char* call) const {
  if (d_.fd < 0) throw ClosedError(env, Context(), call);
}

void BpfMapWrap::CheckKey(Napi::Env env, size_t length, const char* what) const {
  if (length != d_.key_size) {
    throw Napi::TypeError::New(env, Context() + ": " + what + " is " + std::to_string(length) +
                                        " bytes, the map's key size is " + std::to_string(d_.key_size));
  }
}

void BpfMapWrap::CheckValue(Napi::Env env, size_t length, const char* what) const {
  if (length != value_bytes_) {
    std::string expected = std::to_string(value_bytes_);
    if (value_bytes_ != d_.value_size) expected += " (value size " + std::to_string(d_.value_size) + " per CPU, 8-byte aligned)";
    throw Napi::TypeError::New(env, Context() + ": " + what + " is " + std::to_string(length) +
                                        " bytes, the map's value size is " + expected);
  }
}

size_t BpfMapWrap::BatchCount(Napi::Env env, size_t keys_length) const {
  // Queues, stacks, ring buffers and bloom filters have no keys (and a 0 here would divide by zero).
  if (d_.key_size == 0) throw Napi::TypeError::New(env, Context() + ": a " + TypeName(d_.type) + " map has no keys to batch");
  if (keys_length % d_.key_size != 0) {
    throw Napi::RangeError::New(env, Context() + ": keys is " + std::to_string(keys_length) +
                                         " bytes, not a multiple of the key size " + std::to_string(d_.key_size));
  }
  size_t count = keys_length / d_.key_size;
  if (count > UINT32_MAX) throw Napi::RangeError::New(env, Context() + ": more than 2^32-1 entries in one batch");
  return count;
}

Napi::Value BpfMapWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", d_.name);
  out.Set("type", d_.type);
  out.Set("typeName", TypeName(d_.type));
  out.Set("keySize", d_.key_size);
  out.Set("valueSize", d_.value_size);
  out.Set("valueBytes", static_cast<double>(value_bytes_));
  out.Set("maxEntries", d_.max_entries);
  out.Set("flags", d_.flags);
  out.Set("id", d_.id);
  return out;
}

Napi::Value BpfMapWrap::Lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = BytesArg(info, 0, "key");
  RequireOpen(env, "bpf_map_lookup_elem");
  CheckKey(env, key.length, "key");
  LogCapture log;
  std::vector<uint8_t> value(value_bytes_);
  int err = bpf_map_lookup_elem(d_.fd, key.data, value.data());
  if (err == -ENOENT) return env.Undefined();
  if (err != 0) throw BpfError(env, Context(), "bpf_map_lookup_elem", err);
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size());
}

Napi::Value BpfMapWrap::Update(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = BytesArg(info, 0, "key");
  Bytes value = BytesArg(info, 1, "value");
  uint32_t flags = U32Arg(info, 2, "flags", BPF_ANY);
  RequireOpen(env, "bpf_map_update_elem");
  CheckKey(env, key.length, "key");
  CheckValue(env, value.length, "value");
  LogCapture log;
  int err = bpf_map_update_elem(d_.fd, key.data, value.data, flags);
  if (err != 0) throw BpfError(env, Context(), "bpf_map_update_elem", err);
  return env.Undefined();
}

Napi::Value BpfMapWrap::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes key = BytesArg(info, 0, "key");
  RequireOpen(env, "bpf_map_delete_elem");
  CheckKey(env, key.length, "key");
  LogCapture log;
  int err = bpf_map_delete_elem(d_.fd, key.data);
  if (err == -ENOENT) return Napi::Boolean::New(env, false);
  if (err != 0) throw BpfError(env, Context(), "bpf_map_delete_elem", err);
  return Napi::Boolean::New(env, true);
}

// All keys, concatenated. A hash map changed meanwhile may restart the walk (the kernel goes back to
// the first key when the current one was deleted), so the walk stops after max_entries keys.
std::vector<uint8_t> BpfMapWrap::NextKeys(Napi::Env env, size_t* count) {
  RequireOpen(env, "bpf_map_get_next_key");
  LogCapture log;
  std::vector<uint8_t> keys;
  std::vector<uint8_t> next(d_.key_size);
  *count = 0;
  int err = bpf_map_get_next_key(d_.fd, nullptr, next.data());
  while (err == 0 && *count < d_.max_entries) {
    keys.insert(keys.end(), next.begin(), next.end());
    ++*count;
    err = bpf_map_get_next_key(d_.fd, keys.data() + keys.size() - d_.key_size, next.data());
  }
  if (err != 0 && err != -ENOENT) throw BpfError(env, Context(), "bpf_map_get_next_key", err);
  return keys;
}

Napi::Value BpfMapWrap::Keys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t count = 0;
  std::vector<uint8_t> keys = NextKeys(env, &count);
  Napi::Array out = Napi::Array::New(env, count);
  for (size_t i = 0; i < count; ++i) {
    out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, keys.data() + i * d_.key_size, d_.key_size));
  }
  return out;
}

Napi::Value BpfMapWrap::Entries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t count = 0;
  std::vector<uint8_t> keys = NextKeys(env, &count);
  Napi::Array out = Napi::Array::New(env);
  std::vector<uint8_t> value(value_bytes_);
  uint32_t n = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* key = keys.data() + i * d_.key_size;
    int err = bpf_map_lookup_elem(d_.fd, key, value.data());
    if (err == -ENOENT) continue;  // deleted since the walk saw it
    if (err != 0) throw BpfError(env, Context(), "bpf_map_lookup_elem", err);
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Buffer<uint8_t>::Copy(env, key, d_.key_size));
    pair.Set(1u, Napi::Buffer<uint8_t>::Copy(env, value.data(), value.size()));
    out.Set(n++, pair);
  }
  return out;
}

Napi::Value BpfMapWrap::UpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes keys = BytesArg(info, 0, "keys");
  Bytes values = BytesArg(info, 1, "values");
  uint32_t flags = U32Arg(info, 2, "flags", BPF_ANY);
  RequireOpen(env, "bpf_map_update_batch");
  size_t count = BatchCount(env, keys.length);
  if (values.length != count * value_bytes_) {
    throw Napi::RangeError::New(env, Context() + ": values is " + std::to_string(values.length) + " bytes, expected " +
                                         std::to_string(count) + " entries × " + std::to_string(value_bytes_) +
                                         " bytes = " + std::to_string(count * value_bytes_));
  }
  if (count == 0) return Napi::Number::New(env, 0);
  LogCapture log;
  // Only BPF_F_LOCK is allowed in a batch's elem_flags (BPF_NOEXIST there is EINVAL): other flags
  // take the per-element path, which honours them.
  size_t start = 0;
  if (batch_ != 0 && (flags & ~static_cast<uint32_t>(BPF_F_LOCK)) == 0) {
    uint32_t done = static_cast<uint32_t>(count);
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags, .flags = 0);
    int err = bpf_map_update_batch(d_.fd, keys.data, values.data, &done, &opts);
    if (err == 0) {
      batch_ = 1;
      return Napi::Number::New(env, static_cast<double>(count));
    }
    // A command refused up front leaves `done` as it was: only a count below the request is progress.
    size_t progress = done < count ? done : 0;
    if (!BatchUnsupported(err)) {
      throw BpfError(env, Context(), "bpf_map_update_batch", err,
                     std::string(strerror(-err)) + " after " + std::to_string(progress) + " of " + std::to_string(count) + " entries");
    }
    if (err == -EINVAL) {
      start = progress;  // old kernels without the command, or a bad entry: the loop tells which
    } else {
      batch_ = 0;  // the map type has no batch ops
    }
  }
  for (size_t i = start; i < count; ++i) {
    int err = bpf_map_update_elem(d_.fd, keys.data + i * d_.key_size, values.data + i * value_bytes_, flags);
    if (err != 0) {
      throw BpfError(env, Context(), "bpf_map_update_elem", err,
                     std::string(strerror(-err)) + " at entry " + std::to_string(i) + " of " + std::to_string(count));
    }
  }
  return Napi::Number::New(env, static_cast<double>(count));
}

// Deletes every key present and returns how many were; keys already absent are skipped, so a
// delete can be repeated safely.
Napi::Value BpfMapWrap::DeleteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Bytes keys = BytesArg(info, 0, "keys");
  RequireOpen(env, "bpf_map_delete_batch");
  size_t count = BatchCount(env, keys.length);
  LogCapture log;
  size_t offset = 0;
  size_t deleted = 0;
  while (batch_ != 0 && offset < count) {
    uint32_t requested = static_cast<uint32_t>(count - offset);
    uint32_t done = requested;
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = 0, .flags = 0);
    int err = bpf_map_delete_batch(d_.fd, keys.data + offset * d_.key_size, &done, &opts);
    if (err == 0) {
      deleted += requested;
      offset = count;
      batch_ = 1;
      break;
    }
    // A command refused up front leaves `done` as it was: only a count below the request is progress.
    uint32_t progress = done < requested ? done : 0;
    deleted += progress;
    offset += progress;
    if (err == -ENOENT) {
      offset += 1;  // the kernel stops at a missing key: skip it and go on
      continue;
    }
    if (!BatchUnsupported(err)) {
      throw BpfError(env, Context(), "bpf_map_delete_batch", err,
                     std::string(strerror(-err)) + " after " + std::to_string(offset) + " of " + std::to_string(count) + " keys");
    }
    if (err != -EINVAL) batch_ = 0;
    break;
  }
  for (; offset < count; ++offset) {
    int err = bpf_map_delete_elem(d_.fd, keys.data + offset * d_.key_size);
    if (err == -ENOENT) continue;
    if (err != 0) {
      throw BpfError(env, Context(), "bpf_map_delete_elem", err,
                     std::string(strerror(-err)) + " at key " + std::to_string(offset) + " of " + std::to_string(count));
    }
    ++deleted;
  }
  return Napi::Number::New(env, static_cast<double>(deleted));
}

Napi::Value BpfMapWrap::BatchSupported(const Napi::CallbackInfo& info) {
  if (batch_ < 0) return info.Env().Undefined();
  return Napi::Boolean::New(info.Env(), batch_ == 1);
}

Napi::Value BpfMapWrap::Pin(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  RequireOpen(env, "bpf_obj_pin");
  LogCapture log;
  int err = bpf_obj_pin(d_.fd, path.c_str());
  if (err != 0) throw BpfError(env, Context() + " pin " + Quoted(path), "bpf_obj_pin", err);
  return env.Undefined();
}

// The values of a BPF_F_MMAPABLE array, in place: { buffer, stride }. The kernel lays an array out
// with elem_size = round_up(value_size, 8) from the start of the mapping (kernel/bpf/arraymap.c),
// so value i is at i * stride; the stride goes to JS rather than refusing the 4- and 20-byte values
// the data plane uses. The buffer is max_entries * stride bytes; its finalizer unmaps the whole
// page-rounded mapping, once, when V8 frees the backing store (after GC, or after close() detached
// it). The mapping holds the map itself, so the buffer stays valid if this handle is collected.
// One mapping per handle, handed out again while its buffer lives: close() has one buffer to detach
// and repeated calls do not pile up mappings.
Napi::Value BpfMapWrap::Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "mmap");
  if (d_.type != BPF_MAP_TYPE_ARRAY || (d_.flags & BPF_F_MMAPABLE) == 0) {
    std::string what = d_.type == BPF_MAP_TYPE_ARRAY ? "an array without it" : std::string("a ") + TypeName(d_.type) + " map";
    throw BpfError(env, Context(), "mmap", EINVAL, "only an array map created with BPF_F_MMAPABLE can be mapped, this is " + what);
  }
  size_t stride = (static_cast<size_t>(d_.value_size) + 7) / 8 * 8;
  size_t length = stride * d_.max_entries;
  Napi::Object out = Napi::Object::New(env);
  out.Set("stride", static_cast<double>(stride));
  if (!mapping_.IsEmpty()) {
    Napi::ArrayBuffer cached = mapping_.Value();
    if (!cached.IsEmpty() && !cached.IsDetached()) {
      out.Set("buffer", cached);
      return out;
    }
    mapping_.Reset();  // collected, or detached elsewhere: map afresh
  }
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t mapped = (length + page - 1) / page * page;
  void* data = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_SHARED, d_.fd, 0);
  if (data == MAP_FAILED) {
    int err = errno;
    std::string detail = strerror(err);
    // EPERM: frozen (an object's .rodata); EACCES: read-only to programs or to this fd.
    if (err == EPERM || err == EACCES) detail += " (the map is read-only, it cannot be mapped writable)";
    throw BpfError(env, Context(), "mmap", err, detail);
  }
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(env, data, length, [mapped](Napi::Env, void* start) { munmap(start, mapped); });
  } catch (...) {
    munmap(data, mapped);  // no buffer, so no finalizer will
    throw;
  }
  mapping_ = Napi::Reference<Napi::ArrayBuffer>::New(buffer, 0);
  out.Set("buffer", buffer);
  return out;
}

// Detaching drops V8's only hold on the backing store, whose deleter then runs the finalizer (on the
// next turn of the loop): close() never unmaps itself, so the mapping goes exactly once.
void BpfMapWrap::DetachMapping() {
  if (mapping_.IsEmpty()) return;
  Napi::ArrayBuffer buffer = mapping_.Value();
  if (!buffer.IsEmpty() && !buffer.IsDetached()) buffer.Detach();
  mapping_.Reset();
}

// Also detaches the mapped buffer, so no JS writes into a map this handle has closed.
Napi::Value BpfMapWrap::Close(const Napi::CallbackInfo& info) {
  DetachMapping();
  if (d_.fd >= 0) close(d_.fd);
  d_.fd = -1;
  return info.Env().Undefined();
}

}  // namespace wirelane
