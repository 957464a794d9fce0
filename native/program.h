// A loaded program as the kernel describes it (bpf_obj_get_info_by_fd): its id, its tag (the
// kernel's hash of the instructions, map references zeroed, as `bpftool prog` shows it) and the
// maps it uses. What an upgrade compares to tell a running program from the one it would load.
#pragma once

#include <napi.h>

#include <string>

namespace wirelane {

// { id, tag, name, type, typeName, mapIds } of the program behind `fd`; a BpfError naming
// `context` when the kernel refuses (not a program: EINVAL).
Napi::Object DescribeProgramFd(Napi::Env env, int fd, const std::string& context);

// programInfoById(id): the same for a program by its kernel id (ENOENT once it is gone).
Napi::Value ProgramInfoById(const Napi::CallbackInfo& info);

// openMapById(id): a map handle (NativeMap) on a map by its kernel id.
Napi::Value OpenMapById(const Napi::CallbackInfo& info);

}  // namespace wirelane
