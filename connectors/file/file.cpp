// JSON-lines files: a source that remembers how far it got, and a sink that appends.
//
// The source commits the byte offset after the last line whose message (and every one before
// it) was resolved, atomically, to its state directory; a restart resumes there, so a crash
// re-reads at most the lines that were still in flight. The sink acknowledges a batch only
// once it is written (and fsync'ed unless told otherwise).
#include <edgeflow/sdk/commit_tracker.hpp>
#include <edgeflow/sdk/plugin.hpp>
#include <edgeflow/sdk/state_file.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace edgeflow::sdk;
namespace fs = std::filesystem;

namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

// Where the source's position is kept: the offset, and which file it belongs to (its path and
// a fingerprint of its first bytes: a rotated or rewritten file may reuse the inode).
struct Position {
  uint64_t offset = 0;
  uint64_t fp_len = 0;
  uint64_t fp = 0;
  std::string path;
};

constexpr uint64_t kFingerprintBytes = 256;

// FNV-1a of the first n bytes of the file; 0 when it has fewer.
uint64_t fingerprint(int fd, uint64_t n) {
  char buf[kFingerprintBytes];
  if (n > sizeof buf || ::pread(fd, buf, n, 0) != ssize_t(n)) return 0;
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; ++i) h = (h ^ uint8_t(buf[i])) * 1099511628211ull;
  return h;
}

class FileSource : public Source {
 public:
  struct Config {
    std::string path;
    bool follow = false;
    int64_t batch_size = 256;
    std::chrono::milliseconds poll_interval{200};
    std::chrono::milliseconds commit_interval{1000};
  };
  static constexpr const char* type = "file";
  static constexpr const char* description =
      "Reads a JSON-lines file, one message per line, resuming after a restart where it left off.";
  static void describe(Spec<Config>& s) {
    s.option("path", &Config::path).required().doc("The file to read.").example("/var/spool/orders.jsonl");
    s.option("follow", &Config::follow)
        .doc("Keep reading as the file grows (like tail -f) instead of ending at its end.")
        .example("true");
    s.option("batch_size", &Config::batch_size).range(1, 65536).doc("Lines per emitted batch.").example("256");
    s.option("poll_interval", &Config::poll_interval).min(1).doc("With follow: how often to look for new lines.").example("200ms");
    s.option("commit_interval", &Config::commit_interval)
        .doc("How often the position is written to the state directory (and always at stop); "
             "after a crash at most this much is read again.")
        .example("1s");
  }
  FileSource(Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {}
  ~FileSource() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void start() override {
    fd_ = ::open(cfg_.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw Error(errno_text("cannot open " + cfg_.path));
    struct stat st {};
    ::fstat(fd_, &st);
    dir_ = context().state_dir();
    if (dir_.empty()) {
      context().warn("no state directory: the position is not kept, a restart reads " + cfg_.path + " from the start");
    } else {
      state_file_ = state_file(context(), ".pos");
      Position p = load();
      if (p.path == cfg_.path && p.offset <= uint64_t(st.st_size) && p.fp_len <= p.offset &&
          fingerprint(fd_, p.fp_len) == p.fp) {
        offset_ = p.offset;
      } else if (!p.path.empty()) {
        context().warn("stored position " + std::to_string(p.offset) + " is for another file or a truncated one (" +
                       p.path + "); reading " + cfg_.path + " from the start");
      }
    }
    if (offset_ && ::lseek(fd_, off_t(offset_), SEEK_SET) < 0) throw Error(errno_text("cannot seek in " + cfg_.path));
    read_at_ = offset_;
    committed_ = offset_;
    stored_ = offset_;
    if (offset_) context().info("resuming " + cfg_.path + " at byte " + std::to_string(offset_));
  }

  void stop() override { persist(true); }

  void run() override {
    std::vector<ef_message*> batch;
    std::vector<char> buf(1 << 20);
    std::string partial;  // a line not yet ended by '\n'
    for (;;) {
      ssize_t n = ::read(fd_, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(errno_text("cannot read " + cfg_.path));
      }
      if (n == 0) {
        if (!emit_batch(batch)) return;
        if (!cfg_.follow) {
          // The last line of a finished file need not end with a newline.
          if (!partial.empty()) {
            add_line(batch, partial, read_at_);
            partial.clear();
            if (!emit_batch(batch)) return;
          }
          return;
        }
        if (!poll(int32_t(cfg_.poll_interval.count()))) return;
        continue;
      }
      // Lines carry the time they were read: the file holds no time of its own.
      read_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
      const char* p = buf.data();
      const char* end = p + n;
      uint64_t chunk_start = read_at_;
      read_at_ += uint64_t(n);
      while (p < end) {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', size_t(end - p)));
        if (!nl) {
          partial.append(p, end);
          break;
        }
        uint64_t after = chunk_start + uint64_t(nl + 1 - buf.data());
        if (partial.empty()) {
          add_line(batch, std::string_view(p, size_t(nl - p)), after);
        } else {
          partial.append(p, nl);
          add_line(batch, partial, after);
          partial.clear();
        }
        p = nl + 1;
        if (batch.size() >= size_t(cfg_.batch_size) && !emit_batch(batch)) return;
      }
    }
  }

  void on_ack(std::span<const ef_ack> acks) override {
    for (auto& a : acks) tracker_.resolve(a.token, ef_ack_status(a.status));
    if (auto p = tracker_.take()) committed_ = *p;
    persist(false);
  }

 private:
  void add_line(std::vector<ef_message*>& batch, std::string_view line, uint64_t after) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank lines carry nothing
    Message m = new_message();
    m.set_payload(line);
    m.set_content_type("application/json");
    m.set_timestamp_ms(read_ms_);
    m.set_token(tracker_.track(after));
    batch.push_back(m.raw());
  }

  bool emit_batch(std::vector<ef_message*>& batch) {
    if (batch.empty()) return true;
    if (emit(batch) != EF_OK) {
      for (auto* m : batch) free_message(Message(m));
      batch.clear();
      return false;
    }
    batch.clear();
    return true;
  }

  void persist(bool now) {
    if (state_file_.empty() || committed_ == stored_) return;
    auto t = std::chrono::steady_clock::now();
    if (!now && t - last_store_ < cfg_.commit_interval) return;
    uint64_t fp_len = std::min(committed_, kFingerprintBytes);
    std::ostringstream out;
    out << committed_ << ' ' << fp_len << ' ' << fingerprint(fd_, fp_len) << '\n' << cfg_.path << '\n';
    store_atomically(state_file_, out.str());
    stored_ = committed_;
    last_store_ = t;
  }

  Position load() const {
    Position p;
    std::ifstream in(state_file_);
    if (in >> p.offset >> p.fp_len >> p.fp) {
      in.ignore(1);
      std::getline(in, p.path);
    }
    return p;
  }

  Config cfg_;
  int fd_ = -1;
  std::string dir_;
  std::string state_file_;
  uint64_t offset_ = 0;
  uint64_t read_at_ = 0;
  uint64_t stored_ = 0;
  uint64_t committed_ = 0;
  int64_t read_ms_ = 0;
  std::chrono::steady_clock::time_point last_store_{};
  CommitTracker<uint64_t> tracker_;
};

class FileSink : public Sink {
 public:
  struct Config {
    std::string path;
    bool fsync = true;
  };
  static constexpr const char* type = "file";
  static constexpr const char* description =
      "Appends each message's payload as one line (JSON lines); acknowledges once written and synced.";
  static void describe(Spec<Config>& s) {
    s.option("path", &Config::path).required().doc("The file to append to; missing directories are created.").example("/var/lib/edgeflow/out.jsonl");
    s.option("fsync", &Config::fsync)
        .doc("fsync after every batch before acknowledging, so an acknowledged message survives a power cut.")
        .example("true");
  }
  FileSink(Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {}
  ~FileSink() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void start() override {
    std::error_code ec;
    fs::path parent = fs::path(cfg_.path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (ec) throw Error("cannot create directory " + parent.string() + ": " + ec.message());
    fd_ = ::open(cfg_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(errno_text("cannot open " + cfg_.path + " for appending"));
  }

  void write(Batch b) override {
    buf_.clear();
    rejected_.assign(b.size(), false);
    for (size_t i = 0; i < b.size(); ++i) {
      std::string_view p = b[i].payload();
      if (p.find('\n') != std::string_view::npos) {
        // A raw newline would split one message into two lines for whoever reads the file.
        rejected_[i] = true;
        continue;
      }
      buf_.append(p).push_back('\n');
    }
    struct stat st {};
    ::fstat(fd_, &st);
    bool ok = write_all(fd_, buf_.data(), buf_.size()) && (!cfg_.fsync || ::fdatasync(fd_) == 0);
    if (!ok) {
      std::string why = errno_text("cannot write " + cfg_.path);
      // Take back a partial batch so the retry does not leave half of it twice.
      if (S_ISREG(st.st_mode) && ::ftruncate(fd_, st.st_size) != 0) why += " (and could not undo a partial write)";
      return ack_all(b, EF_ACK_RETRY, why);
    }
    for (size_t i = 0; i < b.size(); ++i) {
      if (rejected_[i]) ack(b[i], EF_ACK_REJECTED, "payload contains a newline; a JSON-lines file needs one message per line");
      else ack(b[i], EF_ACK_DELIVERED);
    }
  }

 private:
  Config cfg_;
  int fd_ = -1;
  std::string buf_;
  std::vector<bool> rejected_;
};

}  // namespace

EDGEFLOW_PLUGIN("file", "0.1.0", FileSource, FileSink)
