// Small per-instance state files in the runtime's state directory (source positions, snapshot
// progress): named after the instance, replaced atomically so a crash leaves the old or the new
// content, never a torn one.
#pragma once

#include <edgeflow/sdk/host.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

namespace edgeflow::sdk {

// <state dir>/<instance name, '/', ':' and ' ' made '_'><suffix>; empty without a state dir.
inline std::string state_file(const Context& ctx, std::string_view suffix) {
  std::string dir = ctx.state_dir();
  if (dir.empty()) return "";
  std::string name = ctx.name();
  for (char& c : name)
    if (c == '/' || c == ':' || c == ' ') c = '_';
  return dir + "/" + name + std::string(suffix);
}

// write(2) until done or a real error (EINTR retried); false with errno set on failure.
inline bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= size_t(w);
  }
  return true;
}

// temp file, fsync, rename, fsync the directory. Throws Error naming the file and the errno.
inline void store_atomically(const std::string& file, std::string_view content) {
  auto failed = [](const std::string& what) { return Error(what + ": " + std::strerror(errno)); };
  std::string tmp = file + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw failed("cannot write " + tmp);
  bool ok = write_all(fd, content.data(), content.size()) && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0) throw failed("cannot store " + file);
  int dir = ::open(std::filesystem::path(file).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace edgeflow::sdk
