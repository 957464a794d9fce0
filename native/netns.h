// Runs a block of code with the calling thread inside another network namespace, and puts the
// thread back afterwards, on error too. setns(CLONE_NEWNET) affects only the calling thread, so the
// rest of the process (libuv's pool, other JS threads) never sees the switch.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bpf_error.h"

namespace wirelane {

class NetnsScope {
 public:
  // An empty path stays in the current namespace.
  NetnsScope(Napi::Env env, const std::string& path) {
    if (path.empty()) return;
    original_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ < 0) throw BpfError(env, "network namespace of this thread", "open", errno);
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      close(original_);
      throw BpfError(env, "network namespace \"" + path + "\"", "open", err);
    }
    int rc = setns(target, CLONE_NEWNET);
    int err = errno;
    close(target);
    if (rc != 0) {
      close(original_);
      throw BpfError(env, "network namespace \"" + path + "\"", "setns", err);
    }
  }

  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

  ~NetnsScope() {
    if (original_ < 0) return;
    // Going on in the wrong namespace would silently send every later socket of the JS thread
    // into it; with a held fd of our own namespace this cannot fail short of a kernel bug.
    if (setns(original_, CLONE_NEWNET) != 0) {
      perror("wirelane_bpf: cannot restore the thread's network namespace");
      abort();
    }
    close(original_);
  }

 private:
  int original_ = -1;
};

}  // namespace wirelane
