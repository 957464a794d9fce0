#include "object.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "args.h"
#include "bpf_error.h"
#include "link.h"
#include "map.h"
#include "netns.h"
#include "program.h"
#include "tc.h"

namespace wirelane {

namespace {

struct Variable {
  bpf_map* map;
  std::string name, section;
  uint32_t offset, size;
};

// The global variables of the object's data sections (.rodata for `const volatile`, .data, .bss),
// found through the BTF DATASEC that describes each internal map.
std::vector<Variable> VariablesOf(bpf_object* obj) {
  std::vector<Variable> out;
  const btf* types = bpf_object__btf(obj);
  if (types == nullptr) return out;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (!bpf_map__is_internal(map)) continue;
    const btf_type* sec = btf__type_by_id(types, bpf_map__btf_value_type_id(map));
    if (sec == nullptr || !btf_is_datasec(sec)) continue;
    const btf_var_secinfo* info = btf_var_secinfos(sec);
    for (uint16_t i = 0; i < btf_vlen(sec); ++i, ++info) {
      const btf_type* var = btf__type_by_id(types, info->type);
      if (var == nullptr || !btf_is_var(var)) continue;
      out.push_back({map, btf__name_by_offset(types, var->name_off), btf__name_by_offset(types, sec->name_off),
                     info->offset, info->size});
    }
  }
  return out;
}

std::string NamesOf(const std::vector<std::string>& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? "none" : text;
}

const char* OrUnknown(const char* name) { return name == nullptr ? "unknown" : name; }

// The one load, of load() on the JS thread and of loadAsync() on a pool thread, with this thread's
// share of libbpf's log. The verifier gives up with EAGAIN while a signal is pending for the loading
// thread, and libbpf retries only five times: a CPU profiler's SIGPROF (every 0.5 ms, at the JS
// thread) failed every load. So asynchronous signals are blocked meanwhile: the kernel hands one for
// the whole process (SIGCHLD, SIGTERM) to another thread, one for this thread waits for the end of
// the load. Faults (SIGSEGV, …) stay unblocked: blocked, they would kill the process outright.
std::optional<Failure> LoadObject(bpf_object* obj, const std::string& context) {
  sigset_t all, before;
  sigfillset(&all);
  for (int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&all, fault);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  LogCapture log;
  int err = bpf_object__load(obj);
  pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (err == 0) return std::nullopt;
  return Failure{context, "bpf_object__load", err, "", LogCapture::Text()};
}

}  // namespace

// loadAsync(): the load on libuv's thread pool, settling a Promise. Off the JS thread it touches
// only the bpf_object (every other call on the object is refused meanwhile); it holds the JS object,
// so garbage collection cannot finalize the object under the load.
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, BpfObjectWrap* wrap, Napi::Object self)
      : Napi::AsyncWorker(env, "wirelane.bpf_object__load"),
        wrap_(wrap),
        self_(Napi::Persistent(self)),
        deferred_(Napi::Promise::Deferred::New(env)),
        obj_(wrap->obj_),
        context_(wrap->Context()) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override { failed_ = LoadObject(obj_, context_); }

  // Never throws: an exception here would be an uncaught one, not this Promise's rejection.
  void OnOK() override {
    std::optional<Napi::Error> error = wrap_->FinishLoad(Env(), failed_);
    if (error) {
      deferred_.Reject(error->Value());
    } else {
      deferred_.Resolve(Env().Undefined());
    }
  }

 private:
  BpfObjectWrap* wrap_;
  Napi::ObjectReference self_;
  Napi::Promise::Deferred deferred_;
  bpf_object* obj_;
  std::string context_;
  std::optional<Failure> failed_;
};

Napi::Function BpfObjectWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeObject",
                     {
                         InstanceMethod<&BpfObjectWrap::Name>("name"),
                         InstanceMethod<&BpfObjectWrap::Constants>("constants"),
                         InstanceMethod<&BpfObjectWrap::SetConstant>("setConstant"),
                         InstanceMethod<&BpfObjectWrap::SetMaxEntries>("setMaxEntries"),
                         InstanceMethod<&BpfObjectWrap::SetMapPinPath>("setMapPinPath"),
                         InstanceMethod<&BpfObjectWrap::Load>("load"),
                         InstanceMethod<&BpfObjectWrap::LoadAsync>("loadAsync"),
                         InstanceMethod<&BpfObjectWrap::Loaded>("loaded"),
                         InstanceMethod<&BpfObjectWrap::Maps>("maps"),
                         InstanceMethod<&BpfObjectWrap::Programs>("programs"),
                         InstanceMethod<&BpfObjectWrap::Map>("map"),
                         InstanceMethod<&BpfObjectWrap::ProgramInfo>("programInfo"),
                         InstanceMethod<&BpfObjectWrap::AttachCgroup>("attachCgroup"),
                         InstanceMethod<&BpfObjectWrap::AttachTcx>("attachTcx"),
                         InstanceMethod<&BpfObjectWrap::AttachClsact>("attachClsact"),
                         InstanceMethod<&BpfObjectWrap::RunIterator>("runIterator"),
                         InstanceMethod<&BpfObjectWrap::Close>("close"),
                     });
}

// new NativeObject(pathOrBytes, name?)
BpfObjectWrap::BpfObjectWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObjectWrap>(info) {
  Napi::Env env = info.Env();
  std::string given_name;
  if (info.Length() > 1 && !info[1].IsUndefined()) given_name = StringArg(info, 1, "object name");
  LogCapture log;
  if (info.Length() > 0 && info[0].IsString()) {
    std::string path = StringArg(info, 0, "object path");
    name_ = given_name.empty() ? path : given_name;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = given_name.empty() ? nullptr : given_name.c_str());
    obj_ = bpf_object__open_file(path.c_str(), &opts);
  } else if (info.Length() > 0 && IsBytes(info[0])) {
    Bytes bytes = BytesArg(info, 0, "object bytes");
    name_ = given_name.empty() ? "buffer" : given_name;
    if (bytes.length == 0) throw BpfError(env, Context(), "bpf_object__open_mem", LIBBPF_ERRNO__FORMAT, "the buffer is empty");
    image_.assign(bytes.data, bytes.data + bytes.length);
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name_.c_str());
    obj_ = bpf_object__open_mem(image_.data(), image_.size(), &opts);
  } else {
    throw Napi::TypeError::New(env, "a BPF object is opened from a file path (string) or its bytes (Buffer)");
  }
  if (obj_ == nullptr) {
    int err = errno;
    throw BpfError(env, Context(), info[0].IsString() ? "bpf_object__open_file" : "bpf_object__open_mem", err);
  }
  name_ = bpf_object__name(obj_);
}

// Finalized with a load in flight only when the environment goes (the load holds the JS object): the
// pool thread may still be in libbpf, so the object is left to the process's end.
BpfObjectWrap::~BpfObjectWrap() {
  if (!loading_) bpf_object__close(obj_);
}

void BpfObjectWrap::RequireOpen(Napi::Env env, const char* call) const {
  if (obj_ == nullptr) throw ClosedError(env, Context(), call);
  if (loading_) throw BusyError(env, call);
}

Napi::Error BpfObjectWrap::BusyError(Napi::Env env, const char* call) const {
  return BpfError(env, Context(), call, EBUSY, "a load is in progress (await loadAsync() first)");
}

void BpfObjectWrap::RequireLoaded(Napi::Env env, const char* call) const {
  RequireOpen(env, call);
  if (!loaded_) throw BpfError(env, Context(), call, EINVAL, "the object is not loaded yet (call load() first)");
}

void BpfObjectWrap::RequireNotLoaded(Napi::Env env, const char* call) const {
  RequireOpen(env, call);
  if (loaded_) throw BpfError(env, Context(), call, EBUSY, "the object is already loaded (this is set before load())");
}

bpf_map* BpfObjectWrap::FindMap(Napi::Env env, const std::string& name, const char* call) const {
  bpf_map* map = bpf_object__find_map_by_name(obj_, name.c_str());
  if (map != nullptr) return map;
  std::vector<std::string> names;
  bpf_map* each;
  bpf_object__for_each_map(each, obj_) names.push_back(bpf_map__name(each));
  throw BpfError(env, Context(), call, ENOENT, "no map named " + Quoted(name) + " (maps: " + NamesOf(names) + ")");
}

bpf_program* BpfObjectWrap::FindProgram(Napi::Env env, const std::string& name, const char* call) const {
  bpf_program* prog = bpf_object__find_program_by_name(obj_, name.c_str());
  if (prog != nullptr) return prog;
  std::vector<std::string> names;
  bpf_program* each;
  bpf_object__for_each_program(each, obj_) names.push_back(bpf_program__name(each));
  throw BpfError(env, Context(), call, ENOENT,
                 "no program named " + Quoted(name) + " (programs: " + NamesOf(names) + ")");
}

int BpfObjectWrap::ProgramFd(Napi::Env env, const std::string& name, const char* call) const {
  RequireLoaded(env, call);
  bpf_program* prog = FindProgram(env, name, call);
  int fd = bpf_program__fd(prog);
  if (fd < 0) throw BpfError(env, Context() + " program " + Quoted(name), call, EINVAL, "the program was not loaded");
  return fd;
}

Napi::Value BpfObjectWrap::Name(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), name_); }

Napi::Value BpfObjectWrap::Constants(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "constants");
  std::vector<Variable> vars = VariablesOf(obj_);
  Napi::Array out = Napi::Array::New(env, vars.size());
  for (size_t i = 0; i < vars.size(); ++i) {
    Napi::Object var = Napi::Object::New(env);
    var.Set("name", vars[i].name);
    var.Set("section", vars[i].section);
    var.Set("offset", vars[i].offset);
    var.Set("size", vars[i].size);
    out.Set(static_cast<uint32_t>(i), var);
  }
  return out;
}

// setConstant(name, bytes): the initial value of a global (a `const volatile` in .rodata is fixed
// for the program's life once loaded). The bytes must be exactly the variable's size.
Napi::Value BpfObjectWrap::SetConstant(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "constant name");
  Bytes bytes = BytesArg(info, 1, "constant value");
  RequireNotLoaded(env, "bpf_map__set_initial_value");
  LogCapture log;
  std::vector<Variable> vars = VariablesOf(obj_);
  const Variable* found = nullptr;
  std::vector<std::string> names;
  for (const Variable& var : vars) {
    names.push_back(var.name);
    if (var.name == name) found = &var;
  }
  if (found == nullptr) {
    throw BpfError(env, Context(), "btf_var_secinfos", ENOENT,
                   "no global variable named " + Quoted(name) + " (globals: " + NamesOf(names) + ")");
  }
  if (bytes.length != found->size) {
    throw Napi::TypeError::New(env, Context() + ": constant " + Quoted(name) + " is " + std::to_string(found->size) +
                                        " bytes, the value given is " + std::to_string(bytes.length));
  }
  size_t size = 0;
  const void* current = bpf_map__initial_value(found->map, &size);
  if (current == nullptr || found->offset + found->size > size) {
    throw BpfError(env, Context(), "bpf_map__initial_value", EINVAL,
                   "section " + found->section + " has no initial value to hold " + Quoted(name));
  }
  std::vector<uint8_t> image(static_cast<const uint8_t*>(current), static_cast<const uint8_t*>(current) + size);
  std::memcpy(image.data() + found->offset, bytes.data, bytes.length);
  int err = bpf_map__set_initial_value(found->map, image.data(), image.size());
  if (err != 0) throw BpfError(env, Context() + " constant " + Quoted(name), "bpf_map__set_initial_value", err);
  return env.Undefined();
}

Napi::Value BpfObjectWrap::SetMaxEntries(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "map name");
  uint32_t entries = U32Arg(info, 1, "max entries");
  if (entries == 0) throw Napi::RangeError::New(env, Context() + ": map " + Quoted(name) + " needs at least 1 entry");
  RequireNotLoaded(env, "bpf_map__set_max_entries");
  LogCapture log;
  int err = bpf_map__set_max_entries(FindMap(env, name, "bpf_map__set_max_entries"), entries);
  if (err != 0) throw BpfError(env, Context() + " map " + Quoted(name), "bpf_map__set_max_entries", err);
  return env.Undefined();
}

// setMapPinPath(name, path): at load the map is re-used from that pin when it exists (libbpf checks
// that type, sizes and flags match) or created and pinned there; this is how a restarted agent
// loads new programs over the maps the old one left.
Napi::Value BpfObjectWrap::SetMapPinPath(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "map name");
  std::string path = StringArg(info, 1, "pin path");
  RequireNotLoaded(env, "bpf_map__set_pin_path");
  LogCapture log;
  int err = bpf_map__set_pin_path(FindMap(env, name, "bpf_map__set_pin_path"), path.c_str());
  if (err != 0) throw BpfError(env, Context() + " map " + Quoted(name), "bpf_map__set_pin_path", err);
  return env.Undefined();
}

Napi::Value BpfObjectWrap::Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "bpf_object__load");
  std::optional<Napi::Error> error = FinishLoad(env, LoadObject(obj_, Context()));
  if (error) throw *error;
  return env.Undefined();
}

// loadAsync(): a Promise settled as load() would return or throw; a state error (closed, loaded,
// loading) throws at once.
Napi::Value BpfObjectWrap::LoadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireNotLoaded(env, "bpf_object__load");
  auto* worker = new LoadWorker(env, this, info.This().As<Napi::Object>());
  Napi::Promise promise = worker->Promise();
  loading_ = true;
  worker->Queue();
  return promise;
}

std::optional<Napi::Error> BpfObjectWrap::FinishLoad(Napi::Env env, const std::optional<Failure>& failed) {
  loading_ = false;
  if (failed) return BpfError(env, *failed);
  loaded_ = true;
  return std::nullopt;
}

Napi::Value BpfObjectWrap::Loaded(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), loaded_); }

Napi::Value BpfObjectWrap::Maps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "maps");
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_map* map;
  bpf_object__for_each_map(map, obj_) {
    Napi::Object item = Napi::Object::New(env);
    item.Set("name", bpf_map__name(map));
    item.Set("type", static_cast<uint32_t>(bpf_map__type(map)));
    item.Set("typeName", OrUnknown(libbpf_bpf_map_type_str(bpf_map__type(map))));
    item.Set("keySize", bpf_map__key_size(map));
    item.Set("valueSize", bpf_map__value_size(map));
    item.Set("maxEntries", bpf_map__max_entries(map));
    item.Set("flags", bpf_map__map_flags(map));
    item.Set("internal", bpf_map__is_internal(map));
    int fd = bpf_map__fd(map);
    item.Set("fd", fd >= 0 ? Napi::Value(Napi::Number::New(env, fd)) : env.Undefined());
    out.Set(i++, item);
  }
  return out;
}

Napi::Value BpfObjectWrap::Programs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireOpen(env, "programs");
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj_) {
    Napi::Object item = Napi::Object::New(env);
    item.Set("name", bpf_program__name(prog));
    item.Set("type", static_cast<uint32_t>(bpf_program__type(prog)));
    item.Set("typeName", OrUnknown(libbpf_bpf_prog_type_str(bpf_program__type(prog))));
    item.Set("expectedAttachType", static_cast<uint32_t>(bpf_program__expected_attach_type(prog)));
    item.Set("expectedAttachTypeName", OrUnknown(libbpf_bpf_attach_type_str(bpf_program__expected_attach_type(prog))));
    item.Set("section", bpf_program__section_name(prog));
    int fd = bpf_program__fd(prog);
    item.Set("fd", fd >= 0 ? Napi::Value(Napi::Number::New(env, fd)) : env.Undefined());
    out.Set(i++, item);
  }
  return out;
}

// map(name): a handle with its own fd (a dup), valid after this object is closed.
Napi::Value BpfObjectWrap::Map(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "map name");
  RequireLoaded(env, "bpf_object__find_map_by_name");
  LogCapture log;
  bpf_map* map = FindMap(env, name, "bpf_object__find_map_by_name");
  int fd = fcntl(bpf_map__fd(map), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw BpfError(env, Context() + " map " + Quoted(name), "fcntl(F_DUPFD_CLOEXEC)", errno);
  // The object's name for it: the kernel's is cut to 15 characters.
  return BpfMapWrap::FromFd(env, fd, Context() + " map " + Quoted(name), name);
}

// programInfo(name): the loaded program as the kernel describes it (id, tag, map ids).
Napi::Value BpfObjectWrap::ProgramInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "program name");
  int fd = ProgramFd(env, name, "bpf_obj_get_info_by_fd");
  return DescribeProgramFd(env, fd, Context() + " program " + Quoted(name));
}

// attachCgroup(program, cgroupDir): a bpf_link; the attach type is the program's (its section).
Napi::Value BpfObjectWrap::AttachCgroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "program name");
  std::string path = StringArg(info, 1, "cgroup path");
  RequireLoaded(env, "bpf_program__attach_cgroup");
  bpf_program* prog = FindProgram(env, name, "bpf_program__attach_cgroup");
  std::string context = Context() + " program " + Quoted(name) + " on cgroup " + Quoted(path);
  LogCapture log;
  int cgroup = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgroup < 0) throw BpfError(env, context, "open", errno);
  bpf_link* link = bpf_program__attach_cgroup(prog, cgroup);
  int err = errno;
  close(cgroup);
  if (link == nullptr) throw BpfError(env, context, "bpf_program__attach_cgroup", err);
  // The wrapper owns the link fd from here: disconnect so destroying libbpf's struct frees only memory.
  int fd = bpf_link__fd(link);
  bpf_link__disconnect(link);
  bpf_link__destroy(link);
  return BpfLinkWrap::Create(env, fd);
}

// attachTcx(program, target): a tcx bpf_link (kernel 6.6+).
Napi::Value BpfObjectWrap::AttachTcx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "program name");
  TcTarget target = TcTargetArg(info, 1);
  int fd = wirelane::AttachTcx(env, ProgramFd(env, name, "bpf_link_create"), target);
  return BpfLinkWrap::Create(env, fd);
}

// attachClsact(program, target, handle, priority, replace): a filter on the clsact qdisc (created if
// missing). handle and priority 0 let the kernel choose; the result says which it chose. With
// replace, a filter already at that handle and priority gets the new program in one step.
Napi::Value BpfObjectWrap::AttachClsact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "program name");
  TcTarget target = TcTargetArg(info, 1);
  uint32_t handle = U32Arg(info, 2, "handle", 0);
  uint32_t priority = U32Arg(info, 3, "priority", 0);
  if (priority > 0xffff) throw Napi::RangeError::New(env, "tc priority must be 0-65535, got " + std::to_string(priority));
  bool replace = info.Length() > 4 && info[4].ToBoolean().Value();
  return wirelane::AttachClsact(env, ProgramFd(env, name, "bpf_tc_attach"), target, handle, priority, replace);
}

// runIterator(program, netnsPath): runs an iterator program (iter/tcp, iter/udp, ...) to the end
// and returns how many bytes it wrote. Socket iterators walk the network namespace the iterator
// is created in: netnsPath ("" = this thread's) is entered for the run.
Napi::Value BpfObjectWrap::RunIterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "program name");
  std::string netns = info.Length() > 1 && !info[1].IsUndefined() ? StringArg(info, 1, "network namespace path") : "";
  RequireLoaded(env, "bpf_program__attach_iter");
  bpf_program* prog = FindProgram(env, name, "bpf_program__attach_iter");
  std::string context = Context() + " iterator " + Quoted(name) + (netns.empty() ? "" : " in " + Quoted(netns));
  LogCapture log;
  bpf_link* link = bpf_program__attach_iter(prog, nullptr);
  if (link == nullptr) throw BpfError(env, context, "bpf_program__attach_iter", errno);
  int iter = -1;
  int err = 0;
  try {
    NetnsScope scope(env, netns);
    iter = bpf_iter_create(bpf_link__fd(link));
    if (iter < 0) err = errno;
  } catch (...) {
    bpf_link__destroy(link);
    throw;
  }
  bpf_link__destroy(link);
  if (iter < 0) throw BpfError(env, context, "bpf_iter_create", err);
  double total = 0;
  char buf[4096];
  for (;;) {
    ssize_t n = read(iter, buf, sizeof(buf));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      close(iter);
      throw BpfError(env, context, "read", err);
    }
    total += static_cast<double>(n);
  }
  close(iter);
  return Napi::Number::New(env, total);
}

Napi::Value BpfObjectWrap::Close(const Napi::CallbackInfo& info) {
  if (loading_) throw BusyError(info.Env(), "bpf_object__close");
  bpf_object__close(obj_);
  obj_ = nullptr;
  image_.clear();
  image_.shrink_to_fit();
  return info.Env().Undefined();
}

}  // namespace wirelane
