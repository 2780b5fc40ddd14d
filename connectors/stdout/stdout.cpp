// One payload per line on standard output: for trying flows out and piping into other tools.
#include <edgeflow/sdk/plugin.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

using namespace edgeflow::sdk;

namespace {

class Stdout : public Sink {
 public:
  struct Config {
    bool with_key = false;
  };
  static constexpr const char* type = "stdout";
  static constexpr const char* description = "Writes each message's payload as one line to standard output.";
  static void describe(Spec<Config>& s) {
    s.option("with_key", &Config::with_key).doc("Prefix each line with the message key and a tab.").example("true");
  }
  Stdout(Context c, Config cfg) : Sink(c), cfg_(cfg) {}

  void write(Batch b) override {
    buf_.clear();
    for (size_t i = 0; i < b.size(); ++i) {
      if (cfg_.with_key) buf_.append(b[i].key()).push_back('\t');
      buf_.append(b[i].payload()).push_back('\n');
    }
    // Whoever reads stdout may have gone away (a closed pipe): keep the messages for later.
    if (std::fwrite(buf_.data(), 1, buf_.size(), stdout) != buf_.size() || std::fflush(stdout) != 0) {
      std::string why = std::string("cannot write to stdout: ") + std::strerror(errno);
      std::clearerr(stdout);
      return ack_all(b, EF_ACK_RETRY, why);
    }
    ack_all(b, EF_ACK_DELIVERED);
  }

 private:
  Config cfg_;
  std::string buf_;
};

}  // namespace

EDGEFLOW_PLUGIN("stdout", "0.1.0", Stdout)
