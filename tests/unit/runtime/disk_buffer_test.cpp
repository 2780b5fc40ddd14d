// The durable buffer's store: durable appends, order, the size bound, a process killed while it
// appends, and a damaged byte on disk.
#include "disk_buffer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sys/wait.h>
#include <unistd.h>

using edgeflow::DiskBuffer;
using edgeflow::test::TempDir;

namespace {

std::vector<std::string> bodies(const std::vector<DiskBuffer::Record>& rs) {
  std::vector<std::string> out;
  for (auto& r : rs) out.push_back(r.body);
  return out;
}

}  // namespace

TEST(DiskBuffer, RecordsOutliveTheProcessInOrderUntilRemoved) {
  TempDir dir;
  std::string path = dir.file("buffer/flow/out.sqlite");
  int64_t first_seq = 0;
  {
    DiskBuffer b(path, 1 << 20);
    std::vector<int64_t> seqs;
    ASSERT_EQ(b.append({"a", "bb"}, 1000, &seqs), 2u);
    ASSERT_EQ(b.append({"ccc"}, 2000, &seqs), 1u);
    ASSERT_EQ(seqs.size(), 3u);
    EXPECT_LT(seqs[0], seqs[1]);
    EXPECT_LT(seqs[1], seqs[2]);
    EXPECT_EQ(b.last_seq(), seqs[2]);
    std::vector<DiskBuffer::Damaged> damaged;
    auto rs = b.read(0, 10, damaged);
    ASSERT_EQ(rs.size(), 3u);
    EXPECT_EQ(rs[1].seq, seqs[1]);
    first_seq = rs[0].seq;
    b.remove({first_seq});
    EXPECT_EQ(b.stats().records, 2u);
    // A segment leaves the file (and its bytes the count) once all its records are removed.
    EXPECT_EQ(b.stats().bytes, 2 + 1 + 3 + 3 * DiskBuffer::kFraming);
    EXPECT_EQ(b.stats().oldest_ms, 1000);
    b.remove({rs[1].seq});
    EXPECT_EQ(b.stats().bytes, 3 + DiskBuffer::kFraming);
    EXPECT_EQ(b.stats().oldest_ms, 2000);
  }
  DiskBuffer b(path, 1 << 20);
  EXPECT_EQ(b.stats().records, 1u);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 10, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"ccc"}));
  EXPECT_GT(rs[0].seq, first_seq);
  EXPECT_EQ(rs[0].seq, b.last_seq());
  EXPECT_TRUE(b.read(rs[0].seq, 10, damaged).empty());
  b.remove({rs[0].seq, 999999});  // an unknown seq is no error
  EXPECT_EQ(b.stats().records, 0u);
  EXPECT_EQ(b.stats().bytes, 0u);
  EXPECT_EQ(b.stats().oldest_ms, 0);
  // Sequence numbers never go back, even after the buffer was empty.
  ASSERT_EQ(b.append({"d"}, 3000), 1u);
  EXPECT_GT(b.last_seq(), rs[0].seq);
  EXPECT_GT(b.read(0, 1, damaged).at(0).seq, rs[0].seq);
  EXPECT_TRUE(damaged.empty());
}

// A read may end inside a segment; the next one goes on from there.
TEST(DiskBuffer, ReadsResumeInsideASegment) {
  TempDir dir;
  DiskBuffer b(dir.file("r.sqlite"), 1 << 20);
  ASSERT_EQ(b.append({"0", "1", "2", "3", "4"}, 1), 5u);
  ASSERT_EQ(b.append({"5", "6"}, 2), 2u);
  std::vector<DiskBuffer::Damaged> damaged;
  std::vector<std::string> all;
  for (int64_t after = 0;;) {
    auto rs = b.read(after, 2, damaged);
    if (rs.empty()) break;
    EXPECT_LE(rs.size(), 2u);
    for (auto& r : rs) all.push_back(r.body);
    after = rs.back().seq;
  }
  EXPECT_EQ(all, (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6"}));
}

TEST(DiskBuffer, AnAppendTakesWhatFitsWithinMaxBytesInOrder) {
  TempDir dir;
  const uint64_t f = DiskBuffer::kFraming;
  DiskBuffer b(dir.file("b.sqlite"), 5 + 4 + 1 + 3 * f);
  std::vector<int64_t> seqs;
  EXPECT_EQ(b.append({"12345", "1234"}, 1, &seqs), 2u);
  EXPECT_EQ(b.append({"12", "3"}, 2), 0u);  // the first does not fit: nothing after it either
  EXPECT_EQ(b.stats().bytes, 9 + 2 * f);
  EXPECT_EQ(b.append({"x", "y"}, 3, &seqs), 1u);  // exactly max_bytes
  EXPECT_EQ(b.last_seq(), seqs.back());
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 100, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"12345", "1234", "x"}));
  b.remove({rs[0].seq, rs[1].seq});
  EXPECT_EQ(b.append({"y"}, 5), 1u);
}

// A drained backlog gives the disk back: the file does not stay at its largest.
TEST(DiskBuffer, TheFileShrinksOnceABigBacklogIsDrained) {
  TempDir dir;
  std::string path = dir.file("big.sqlite");
  DiskBuffer b(path, 1ull << 30);
  std::string mib(1 << 20, 'm');
  for (int i = 0; i < 80; ++i) ASSERT_EQ(b.append({mib}, i), 1u);
  std::vector<DiskBuffer::Damaged> damaged;
  std::vector<int64_t> seqs;
  for (int64_t after = 0;;) {
    auto rs = b.read(after, 8, damaged);
    if (rs.empty()) break;
    for (auto& r : rs) seqs.push_back(r.seq);
    after = rs.back().seq;
  }
  ASSERT_EQ(seqs.size(), 80u);
  EXPECT_GT(std::filesystem::file_size(path) + std::filesystem::file_size(path + "-wal"), 80u << 20);
  b.remove(seqs);
  EXPECT_EQ(b.stats().records, 0u);
  EXPECT_LT(std::filesystem::file_size(path), 1u << 20);
  ASSERT_EQ(b.append({"after"}, 99), 1u);  // and goes on as ever
  EXPECT_EQ(b.read(0, 10, damaged).at(0).body, "after");
}

// A child appends and says so after each append returned; it is killed at a random point. Every
// append it reported is there afterwards, whole, and no batch is there in part.
TEST(DiskBuffer, AProcessKilledWhileAppendingLosesNothingItWasToldWasStored) {
  TempDir dir;
  std::string path = dir.file("crash.sqlite");
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      DiskBuffer b(path, uint64_t(1) << 30);
      for (int i = 0;; ++i) {
        std::string tag = std::to_string(round) + ":" + std::to_string(i);
        std::string a = tag + ":a", c = tag + ":c";
        if (b.append({a, std::string(4000, 'x'), c}, i) != 3) _exit(3);
        if (write(fds[1], "+", 1) != 1) _exit(4);
      }
    }
    close(fds[1]);
    // Let it get some appends done, then kill it wherever it is.
    char c;
    for (int k = 0; k < 20 + round * 7; ++k) ASSERT_EQ(read(fds[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    size_t reported = 0;
    while (read(fds[0], &c, 1) == 1) ++reported;
    reported += size_t(20 + round * 7);
    close(fds[0]);

    DiskBuffer b(path, uint64_t(1) << 30);
    std::vector<DiskBuffer::Damaged> damaged;
    auto rs = b.read(0, 1000000, damaged);
    EXPECT_TRUE(damaged.empty());
    size_t mine = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
      if (rs[i].body.rfind(std::to_string(round) + ":", 0) != 0 || rs[i].body.back() != 'a') continue;
      ++mine;
      ASSERT_LT(i + 2, rs.size());  // a batch is whole
      EXPECT_EQ(rs[i + 1].body.size(), 4000u);
      EXPECT_EQ(rs[i + 2].body, rs[i].body.substr(0, rs[i].body.size() - 1) + "c");
    }
    EXPECT_GE(mine, reported) << "round " << round;
    EXPECT_LE(mine, reported + 1) << "round " << round;  // at most the one being appended when killed
  }
}

namespace {

// The closed database has no WAL left: the segments are in the main file.
void flip(const std::string& path, const std::string& marker, long offset, char mask) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  size_t at = bytes.find(marker);
  ASSERT_NE(at, std::string::npos);
  size_t where = size_t(long(at) + offset);
  bytes[where] = char(bytes[where] ^ mask);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST(DiskBuffer, ADamagedByteSetsItsRecordAsideAndTheRestIsRead) {
  TempDir dir;
  std::string path = dir.file("d.sqlite");
  {
    DiskBuffer b(path, 1 << 20);
    ASSERT_EQ(b.append({"first record", "SECOND-RECORD-MARKER payload", "third record"}, 7), 3u);
  }
  flip(path, "SECOND-RECORD-MARKER", 3, 0x20);

  DiskBuffer b(path, 1 << 20);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 10, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"first record", "third record"}));
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_NE(damaged[0].reason.find("is damaged: checksum"), std::string::npos) << damaged[0].reason;
  EXPECT_EQ(damaged[0].body, "SECoND-RECORD-MARKER payload");
  EXPECT_EQ(b.stats().records, 3u);  // kept until dealt with (dead-lettered), then removed
  b.remove({rs[0].seq, damaged[0].seq, rs[1].seq});
  EXPECT_EQ(b.stats().records, 0u);
  damaged.clear();
  EXPECT_TRUE(b.read(0, 10, damaged).empty());
  EXPECT_TRUE(damaged.empty());
}

// A hit on a record's length: the records after it cannot be told apart, so the rest of the
// segment is set aside as one; the segments after it are read as ever.
TEST(DiskBuffer, DamagedFramingSetsTheRestOfItsSegmentAside) {
  TempDir dir;
  std::string path = dir.file("f.sqlite");
  {
    DiskBuffer b(path, 1 << 20);
    ASSERT_EQ(b.append({"alpha", "BETA-MARKER", "gamma"}, 1), 3u);
    ASSERT_EQ(b.append({"delta"}, 2), 1u);
  }
  // The length of BETA-MARKER sits 8 bytes before it: made huge.
  flip(path, "BETA-MARKER", -8 + 3, char(0x80));

  DiskBuffer b(path, 1 << 20);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 10, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"alpha", "delta"}));
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_NE(damaged[0].reason.find("records 2 to 3 of 3 set aside as one"), std::string::npos) << damaged[0].reason;
  EXPECT_NE(damaged[0].body.find("BETA-MARKER"), std::string::npos);
  EXPECT_NE(damaged[0].body.find("gamma"), std::string::npos);
  b.remove({rs[0].seq, damaged[0].seq, rs[1].seq});
  EXPECT_EQ(b.stats().records, 0u);
  EXPECT_EQ(b.stats().bytes, 0u);
}

TEST(DiskBuffer, AFileThatIsNotABufferIsRefusedWithItsPath) {
  TempDir dir;
  std::string path = dir.write("junk.sqlite", std::string(8192, 'j'));
  try {
    DiskBuffer b(path, 100);
    FAIL() << "opened";
  } catch (const edgeflow::BufferError& e) {
    EXPECT_NE(std::string(e.what()).find("buffer " + path + ": "), std::string::npos) << e.what();
  }
}
