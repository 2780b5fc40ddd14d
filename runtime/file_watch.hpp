// Watches flow files and directories (inotify) and calls back once they have been quiet for a
// moment after a change: editors write a file in several steps (a temp file, a rename), and a
// deploy may change several files at once.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace edgeflow {

class FileWatch {
 public:
  // paths: files (their directory is watched, for that name) and directories (*.yaml, *.yml).
  // Throws std::runtime_error when inotify cannot be set up.
  FileWatch(const std::vector<std::string>& paths, std::function<void()> changed,
            std::chrono::milliseconds quiet = std::chrono::milliseconds(300));
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

 private:
  void run();
  bool relevant(int wd, const std::string& name) const;

  struct Watch {
    int wd;
    std::string file;  // empty: any flow file of the directory
  };
  int inotify_ = -1;
  int stop_ = -1;  // eventfd
  std::vector<Watch> watches_;
  std::function<void()> changed_;
  std::chrono::milliseconds quiet_;
  std::thread thread_;
};

}  // namespace edgeflow
