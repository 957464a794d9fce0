#include "probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "args.h"
#include "bpf_error.h"
#include "tc.h"

namespace wirelane {

namespace {

#define WIRELANE_HELPER_NAME(name) #name
// Indexed by helper id, from the uapi header this addon is built with.
const char* const kHelperNames[] = {__BPF_FUNC_MAPPER(WIRELANE_HELPER_NAME)};
#undef WIRELANE_HELPER_NAME
constexpr int kHelperCount = sizeof kHelperNames / sizeof kHelperNames[0];

enum class Kind { Program, Map, Attach, Link, Helper };

const char* NameOf(Kind kind, int id) {
  switch (kind) {
    case Kind::Program: return libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(id));
    case Kind::Map: return libbpf_bpf_map_type_str(static_cast<bpf_map_type>(id));
    case Kind::Attach: return libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(id));
    case Kind::Link: return libbpf_bpf_link_type_str(static_cast<bpf_link_type>(id));
    case Kind::Helper: return id < kHelperCount ? kHelperNames[id] : nullptr;
  }
  return nullptr;
}

std::vector<std::string> NamesOf(Kind kind) {
  std::vector<std::string> names;
  int limit = kind == Kind::Helper ? kHelperCount : 256;
  for (int id = 0; id < limit; ++id) {
    const char* name = NameOf(kind, id);
    names.push_back(name == nullptr ? "" : name);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  return names;
}

// A type given by libbpf's name ("cgroup_sock_addr", "lru_hash", "get_netns_cookie") or by number.
int TypeArg(const Napi::CallbackInfo& info, size_t i, Kind kind, const char* what) {
  if (info.Length() > i && info[i].IsNumber()) return static_cast<int>(U32Arg(info, i, what));
  std::string name = StringArg(info, i, what);
  std::vector<std::string> names = NamesOf(kind);
  for (size_t id = 0; id < names.size(); ++id) {
    if (names[id] == name) return static_cast<int>(id);
  }
  throw Napi::TypeError::New(info.Env(), std::string("unknown ") + what + " " + Quoted(name));
}

// r0 = 0; exit
int LoadTrivialProgram(bpf_prog_type type) {
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[0].dst_reg = BPF_REG_0;
  insns[1].code = BPF_JMP | BPF_EXIT;
  return bpf_prog_load(type, nullptr, "GPL", insns, 2, nullptr);
}

Napi::Value ProbeResult(Napi::Env env, int result, const std::string& context, const char* call) {
  if (result < 0) throw BpfError(env, context, call, result);
  return Napi::Boolean::New(env, result == 1);
}

}  // namespace

// { socketFilter, schedCls }: the errno of loading a trivial program of each type, 0 when it
// loaded. A socket filter needs no privilege (unless unprivileged BPF is disabled): it says whether
// the bpf syscall works; sched_cls needs CAP_BPF and CAP_NET_ADMIN, like wirelane's own programs.
Napi::Value ProbeBpf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LogCapture log;
  Napi::Object out = Napi::Object::New(env);
  for (auto [key, type] : {std::pair{"socketFilter", BPF_PROG_TYPE_SOCKET_FILTER}, std::pair{"schedCls", BPF_PROG_TYPE_SCHED_CLS}}) {
    int fd = LoadTrivialProgram(type);
    if (fd >= 0) close(fd);
    out.Set(key, fd >= 0 ? 0 : -fd);
  }
  out.Set("log", LogCapture::Text());
  return out;
}

Napi::Value ProbeProgramType(const Napi::CallbackInfo& info) {
  int type = TypeArg(info, 0, Kind::Program, "program type");
  LogCapture log;
  return ProbeResult(info.Env(), libbpf_probe_bpf_prog_type(static_cast<bpf_prog_type>(type), nullptr),
                     "program type " + std::to_string(type), "libbpf_probe_bpf_prog_type");
}

Napi::Value ProbeMapType(const Napi::CallbackInfo& info) {
  int type = TypeArg(info, 0, Kind::Map, "map type");
  LogCapture log;
  return ProbeResult(info.Env(), libbpf_probe_bpf_map_type(static_cast<bpf_map_type>(type), nullptr),
                     "map type " + std::to_string(type), "libbpf_probe_bpf_map_type");
}

// libbpf 1.1's libbpf_probe_bpf_helper looks for "unknown func" in the verifier log, but kernels
// since 6.2 say "program of this type cannot use helper", so it reports every helper as present.
// This is the same probe (a program that only calls the helper) reading both wordings.
Napi::Value ProbeHelper(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int type = TypeArg(info, 0, Kind::Program, "program type");
  int helper = TypeArg(info, 1, Kind::Helper, "helper");
  std::string context = "helper " + std::to_string(helper) + " in program type " + std::to_string(type);
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  switch (type) {
    case BPF_PROG_TYPE_CGROUP_SOCK_ADDR: opts.expected_attach_type = BPF_CGROUP_INET4_CONNECT; break;
    case BPF_PROG_TYPE_CGROUP_SOCKOPT: opts.expected_attach_type = BPF_CGROUP_GETSOCKOPT; break;
    case BPF_PROG_TYPE_SK_LOOKUP: opts.expected_attach_type = BPF_SK_LOOKUP; break;
    case BPF_PROG_TYPE_TRACING:
    case BPF_PROG_TYPE_EXT:
    case BPF_PROG_TYPE_LSM:
    case BPF_PROG_TYPE_STRUCT_OPS:
      throw BpfError(env, context, "bpf_prog_load", EOPNOTSUPP, "programs of this type need a target to load; not probed");
    default: break;
  }
  std::vector<char> verifier_log(16384, '\0');
  opts.log_buf = verifier_log.data();
  opts.log_size = static_cast<uint32_t>(verifier_log.size());
  opts.log_level = 1;
  bpf_insn insns[2] = {};
  insns[0].code = BPF_JMP | BPF_CALL;
  insns[0].imm = helper;
  insns[1].code = BPF_JMP | BPF_EXIT;
  LogCapture log;
  int fd = bpf_prog_load(static_cast<bpf_prog_type>(type), nullptr, "GPL", insns, 2, &opts);
  if (fd >= 0) {
    close(fd);
    return Napi::Boolean::New(env, true);
  }
  std::string text(verifier_log.data());
  for (const char* refusal : {"invalid func ", "unknown func ", "cannot use helper", "cannot call"}) {
    if (text.find(refusal) != std::string::npos) return Napi::Boolean::New(env, false);
  }
  if (fd == -EPERM || text.empty()) throw BpfError(env, context, "bpf_prog_load", fd);
  // Known to this program type; the trivial program just does not satisfy its arguments.
  return Napi::Boolean::New(env, true);
}

// Whether the kernel has tcx, without touching any interface: a tcx link for ifindex 0 fails with
// ENODEV where tcx exists (the device lookup comes after the attach type is accepted) and EINVAL
// where the attach type is unknown.
Napi::Value ProbeTcx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LogCapture log;
  int prog = LoadTrivialProgram(BPF_PROG_TYPE_SCHED_CLS);
  if (prog < 0) throw BpfError(env, "tcx probe", "bpf_prog_load", prog);
  int link = bpf_link_create(prog, 0, static_cast<bpf_attach_type>(kTcxIngress), nullptr);
  close(prog);
  if (link >= 0) {
    close(link);
    return Napi::Boolean::New(env, true);
  }
  if (link == -ENODEV) return Napi::Boolean::New(env, true);
  if (link == -EINVAL) return Napi::Boolean::New(env, false);
  throw BpfError(env, "tcx probe", "bpf_link_create", link);
}

// typeNames(kind): libbpf's names indexed by id ("" for an unknown id), for 'program', 'map',
// 'attach', 'link' or 'helper'.
Napi::Value TypeNames(const Napi::CallbackInfo& info) {
  std::string kind = StringArg(info, 0, "kind");
  Kind k;
  if (kind == "program") k = Kind::Program;
  else if (kind == "map") k = Kind::Map;
  else if (kind == "attach") k = Kind::Attach;
  else if (kind == "link") k = Kind::Link;
  else if (kind == "helper") k = Kind::Helper;
  else throw Napi::TypeError::New(info.Env(), "kind must be program, map, attach, link or helper");
  std::vector<std::string> names = NamesOf(k);
  Napi::Array out = Napi::Array::New(info.Env(), names.size());
  for (size_t i = 0; i < names.size(); ++i) out.Set(static_cast<uint32_t>(i), names[i]);
  return out;
}

}  // namespace wirelane
