// What a BPF file descriptor refers to, read from its anon inode name ("anon_inode:bpf-map"), so a
// pin holding a map is not mistaken for a link or the other way round.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

namespace wirelane {

inline std::string FdKind(int fd) {
  char path[64];
  char target[128];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return "unknown";
  std::string text(target, static_cast<size_t>(n));
  const std::string prefix = "anon_inode:";
  return text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : text;
}

}  // namespace wirelane
