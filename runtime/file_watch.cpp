#include "file_watch.hpp"

#include "yaml_file.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace edgeflow {

namespace fs = std::filesystem;

FileWatch::FileWatch(const std::vector<std::string>& paths, std::function<void()> changed,
                     std::chrono::milliseconds quiet)
    : changed_(std::move(changed)), quiet_(quiet) {
  inotify_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  stop_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (inotify_ < 0 || stop_ < 0) {
    std::string why = std::strerror(errno);
    if (inotify_ >= 0) close(inotify_);
    if (stop_ >= 0) close(stop_);
    throw std::runtime_error("cannot watch the flow files: " + why);
  }
  const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
  for (auto& p : paths) {
    std::error_code ec;
    bool dir = fs::is_directory(p, ec);
    std::string target = dir ? p : fs::path(p).parent_path().string();
    if (target.empty()) target.push_back('.');  // a file named without a directory
    int wd = inotify_add_watch(inotify_, target.c_str(), mask);
    if (wd < 0) {
      std::string why = std::strerror(errno);
      close(inotify_);
      close(stop_);
      throw std::runtime_error("cannot watch " + target + ": " + why);
    }
    watches_.push_back({wd, dir ? std::string() : fs::path(p).filename().string()});
  }
  thread_ = std::thread([this] { run(); });
}

FileWatch::~FileWatch() {
  uint64_t one = 1;
  if (write(stop_, &one, sizeof one) < 0) {
    // The thread then ends at its next wake-up; nothing else can be done here.
  }
  if (thread_.joinable()) thread_.join();
  close(inotify_);
  close(stop_);
}

bool FileWatch::relevant(int wd, const std::string& name) const {
  for (auto& w : watches_) {
    if (w.wd != wd) continue;
    if (!w.file.empty()) {
      if (name == w.file) return true;
      continue;
    }
    auto ext = fs::path(name).extension();
    if ((ext == ".yaml" || ext == ".yml") && !is_test_file(name)) return true;
  }
  return false;
}

void FileWatch::run() {
  alignas(inotify_event) char buf[16384];
  bool pending = false;
  for (;;) {
    pollfd fds[2] = {{inotify_, POLLIN, 0}, {stop_, POLLIN, 0}};
    // Waiting for the files to be quiet: a change that keeps coming postpones the call.
    int n = poll(fds, 2, pending ? int(quiet_.count()) : -1);
    if (n < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (n == 0 && pending) {
      pending = false;
      changed_();
      continue;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    ssize_t len;
    while ((len = read(inotify_, buf, sizeof buf)) > 0) {
      for (char* p = buf; p < buf + len;) {
        auto* e = reinterpret_cast<inotify_event*>(p);
        if (e->len && relevant(e->wd, e->name)) pending = true;
        p += sizeof(inotify_event) + e->len;
      }
    }
  }
}

}  // namespace edgeflow
