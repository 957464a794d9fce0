#include "program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "args.h"
#include "bpf_error.h"
#include "map.h"

namespace wirelane {

Napi::Object DescribeProgramFd(Napi::Env env, int fd, const std::string& context) {
  LogCapture log;
  bpf_prog_info prog{};
  uint32_t length = sizeof prog;
  int err = bpf_obj_get_info_by_fd(fd, &prog, &length);
  if (err != 0) throw BpfError(env, context, "bpf_obj_get_info_by_fd", err);
  // A second call fetches the map ids, now that the count is known (it may grow in between only
  // for programs still being loaded, which ours are not).
  std::vector<uint32_t> map_ids(prog.nr_map_ids);
  if (!map_ids.empty()) {
    bpf_prog_info again{};
    again.nr_map_ids = static_cast<uint32_t>(map_ids.size());
    again.map_ids = reinterpret_cast<uint64_t>(map_ids.data());
    length = sizeof again;
    err = bpf_obj_get_info_by_fd(fd, &again, &length);
    if (err != 0) throw BpfError(env, context, "bpf_obj_get_info_by_fd", err);
    map_ids.resize(std::min<size_t>(map_ids.size(), again.nr_map_ids));
  }
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; ++i) snprintf(tag + 2 * i, 3, "%02x", prog.tag[i]);
  const char* type = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(prog.type));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", prog.id);
  out.Set("tag", std::string(tag));
  out.Set("name", std::string(prog.name));
  out.Set("type", prog.type);
  out.Set("typeName", type == nullptr ? "unknown" : type);
  Napi::Array ids = Napi::Array::New(env, map_ids.size());
  for (size_t i = 0; i < map_ids.size(); ++i) ids.Set(static_cast<uint32_t>(i), map_ids[i]);
  out.Set("mapIds", ids);
  return out;
}

namespace {

// A kernel object opened by the id in argument 0: its fd (the caller's to close) and the name
// errors give it ("map id 7").
struct ById {
  int fd;
  std::string context;
};

// `what` names the argument ("map id"), `open` is libbpf's bpf_*_get_fd_by_id and `call` its name.
// A bad argument is a TypeError or RangeError, an id the kernel does not know a BpfError (ENOENT).
ById OpenById(const Napi::CallbackInfo& info, const char* what, int (*open)(__u32), const char* call) {
  uint32_t id = U32Arg(info, 0, what);
  std::string context = std::string(what) + " " + std::to_string(id);
  LogCapture log;
  int fd = open(id);
  if (fd < 0) throw BpfError(info.Env(), context, call, errno);
  return {fd, context};
}

// Closes an fd when the scope ends, however it ends.
struct ClosedAtExit {
  int fd;
  ~ClosedAtExit() { close(fd); }
};

}  // namespace

Napi::Value ProgramInfoById(const Napi::CallbackInfo& info) {
  ById program = OpenById(info, "program id", bpf_prog_get_fd_by_id, "bpf_prog_get_fd_by_id");
  ClosedAtExit closed{program.fd};
  return DescribeProgramFd(info.Env(), program.fd, program.context);
}

Napi::Value OpenMapById(const Napi::CallbackInfo& info) {
  ById map = OpenById(info, "map id", bpf_map_get_fd_by_id, "bpf_map_get_fd_by_id");
  return BpfMapWrap::FromFd(info.Env(), map.fd, map.context);
}

}  // namespace wirelane
