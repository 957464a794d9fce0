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

Napi::Value ProgramInfoById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = U32Arg(info, 0, "program id");
  std::string context = "program id " + std::to_string(id);
  LogCapture log;
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw BpfError(env, context, "bpf_prog_get_fd_by_id", errno);
  try {
    Napi::Object out = DescribeProgramFd(env, fd, context);
    close(fd);
    return out;
  } catch (...) {
    close(fd);
    throw;
  }
}

Napi::Value OpenMapById(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = U32Arg(info, 0, "map id");
  std::string context = "map id " + std::to_string(id);
  LogCapture log;
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) throw BpfError(env, context, "bpf_map_get_fd_by_id", errno);
  MapDescription description;
  int err = DescribeMapFd(fd, &description);
  if (err != 0) {
    close(fd);
    throw BpfError(env, context, "bpf_obj_get_info_by_fd", err);
  }
  return BpfMapWrap::Create(env, description);
}

}  // namespace wirelane
