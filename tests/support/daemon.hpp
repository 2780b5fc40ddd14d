// The real daemon as a child process (header-only); the including target defines EDGEFLOW_BIN.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgeflow::test {

// `edgeflow run` with stdout on a pipe we read line by line and stderr in a file.
class Daemon {
 public:
  Daemon(const std::vector<std::string>& args, const std::string& stderr_file) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      int err = open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, 2);
      close(fds[0]);
      // Tests run daemons side by side: none takes the admin API's default port unless asked.
      setenv("EDGEFLOW_ADMIN", "off", 0);
      std::vector<char*> argv{const_cast<char*>(EDGEFLOW_BIN)};
      for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(EDGEFLOW_BIN, argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Daemon() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }
  // Next stdout line; false at EOF.
  bool line(std::string& out) {
    char* buf = nullptr;
    size_t cap = 0;
    ssize_t n = getline(&buf, &cap, out_);
    if (n > 0) out.assign(buf, size_t(n) - (buf[n - 1] == '\n'));
    free(buf);
    return n > 0;
  }
  void signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

}  // namespace edgeflow::test
