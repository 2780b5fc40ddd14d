// The PostgreSQL test fixture is real and ready for CDC work: a private server per test, with
// wal_level=logical, on which a pgoutput slot decodes committed changes.
#include "postgres_server.hpp"

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace {

using edgeflow::test::PostgresServer;

// errno of a TCP connect to 127.0.0.1:port (0 when it connected).
int connect_errno(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int e = rc == 0 ? 0 : errno;
  ::close(fd);
  return e;
}

TEST(PostgresServer, BinariesAreInstalled) {
  ASSERT_TRUE(PostgresServer::available())
      << "PostgreSQL is not installed: run `bash scripts/test.sh`, which installs the Debian "
         "package `postgresql` (EDGEFLOW_TEST_DEPS in scripts/lib/deps.sh)";
}

TEST(PostgresServer, StartsWithLogicalReplicationEnabled) {
  PostgresServer pg;
  EXPECT_GT(pg.port(), 0);
  EXPECT_EQ(pg.dsn(), "host=127.0.0.1 port=" + std::to_string(pg.port()) +
                          " user=postgres dbname=postgres");
  EXPECT_EQ(connect_errno(pg.port()), 0);
  EXPECT_EQ(pg.psql("SHOW wal_level"), "logical") << pg.log_tail();
  EXPECT_GE(std::stoi(pg.psql("SHOW server_version_num")), 150000);
  EXPECT_GE(std::stoi(pg.psql("SHOW max_replication_slots")), 10);
  EXPECT_GE(std::stoi(pg.psql("SHOW max_wal_senders")), 10);
  EXPECT_EQ(pg.psql("SHOW server_encoding"), "UTF8");
  EXPECT_EQ(pg.psql("SELECT current_user"), "postgres");
  EXPECT_EQ(pg.psql("SELECT 1; SELECT 'two'"), "1\ntwo");

  // A failing statement throws, naming the command and what the server said.
  try {
    pg.psql("SELEC 1");
    FAIL() << "psql with a syntax error did not throw";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("psql"), std::string::npos) << what;
    EXPECT_NE(what.find("syntax error"), std::string::npos) << what;
    EXPECT_NE(what.find("exit status 3"), std::string::npos) << what;
  }
}

TEST(PostgresServer, PgoutputSlotDecodesInsertUpdateDelete) {
  PostgresServer pg;
  pg.psql(
      "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);"
      "CREATE PUBLICATION p FOR TABLE accounts;");
  EXPECT_EQ(pg.psql("SELECT slot_name FROM pg_create_logical_replication_slot('s', 'pgoutput')"),
            "s");
  pg.psql(
      "BEGIN;"
      "INSERT INTO accounts VALUES (1, 'hello-edgeflow');"
      "UPDATE accounts SET name = 'updated' WHERE id = 1;"
      "DELETE FROM accounts WHERE id = 1;"
      "COMMIT;");

  const std::string changes =
      "pg_logical_slot_peek_binary_changes('s', NULL, NULL, 'proto_version', '1', "
      "'publication_names', 'p')";
  // B(egin) R(elation) I(nsert) U(pdate) D(elete) C(ommit), one row each, in commit order.
  EXPECT_EQ(pg.psql("SELECT chr(get_byte(data, 0)) FROM " + changes), "B\nR\nI\nU\nD\nC")
      << pg.log_tail();
  // The Relation message names the table; the Insert carries the new row in text format.
  EXPECT_EQ(pg.psql("SELECT position('accounts'::bytea IN data) > 0 FROM " + changes +
                    " WHERE get_byte(data, 0) = ascii('R')"),
            "t");
  EXPECT_EQ(pg.psql("SELECT position('hello-edgeflow'::bytea IN data) > 0 FROM " + changes +
                    " WHERE get_byte(data, 0) = ascii('I')"),
            "t");
  // Peeking does not consume: the slot still holds the transaction, and is a pgoutput slot.
  EXPECT_EQ(pg.psql("SELECT count(*) FROM " + changes), "6");
  EXPECT_EQ(pg.psql("SELECT plugin || ' ' || slot_type FROM pg_replication_slots "
                    "WHERE slot_name = 's'"),
            "pgoutput logical");
}

TEST(PostgresServer, TwoServersRunSideBySideInIsolation) {
  PostgresServer a;
  PostgresServer b;
  EXPECT_NE(a.port(), b.port());
  EXPECT_NE(a.data_dir(), b.data_dir());
  a.psql("CREATE TABLE only_in_a (id int)");
  EXPECT_EQ(a.psql("SELECT to_regclass('only_in_a') IS NOT NULL"), "t");
  EXPECT_EQ(b.psql("SELECT to_regclass('only_in_a') IS NOT NULL"), "f");
  EXPECT_EQ(a.psql("SHOW port"), std::to_string(a.port()));
  EXPECT_EQ(b.psql("SHOW port"), std::to_string(b.port()));
  EXPECT_EQ(a.psql("SHOW data_directory"), a.data_dir().string());
  EXPECT_EQ(b.psql("SHOW data_directory"), b.data_dir().string());
}

TEST(PostgresServer, DestructorStopsTheServerAndRemovesItsDirectory) {
  auto pg = std::make_unique<PostgresServer>();
  const int port = pg->port();
  const std::filesystem::path dir = pg->dir();
  ASSERT_EQ(pg->psql("SELECT 1"), "1");
  ASSERT_EQ(connect_errno(port), 0);
  ASSERT_TRUE(std::filesystem::exists(dir / "data" / "postmaster.pid"));
  pg.reset();
  EXPECT_EQ(connect_errno(port), ECONNREFUSED);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
