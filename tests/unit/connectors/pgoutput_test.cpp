// Unit tests for the header-only pgoutput decoder (connectors/postgres_cdc/pgoutput.hpp).
// Messages are built byte by byte with a small encoder that follows the documented wire format
// (PostgreSQL 15, "Logical Replication Message Formats").
#include "pgoutput.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace pg = edgeflow::pg;
using Bytes = std::vector<std::uint8_t>;

namespace {

// ---- test-side encoder --------------------------------------------------------------------------

class Enc {
 public:
  explicit Enc(char type) { u8(static_cast<std::uint8_t>(type)); }
  Enc& u8(std::uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  Enc& ch(char c) { return u8(static_cast<std::uint8_t>(c)); }
  Enc& i16(std::int16_t v) { return be(static_cast<std::uint16_t>(v), 2); }
  Enc& i32(std::int32_t v) { return be(static_cast<std::uint32_t>(v), 4); }
  Enc& u32(std::uint32_t v) { return be(v, 4); }
  Enc& i64(std::int64_t v) { return be(static_cast<std::uint64_t>(v), 8); }
  Enc& u64(std::uint64_t v) { return be(v, 8); }
  Enc& str(std::string_view s) {  // NUL-terminated String
    b_.insert(b_.end(), s.begin(), s.end());
    return u8(0);
  }
  Enc& raw(std::string_view s) {
    b_.insert(b_.end(), s.begin(), s.end());
    return *this;
  }
  // TupleData column helpers
  Enc& null_col() { return ch('n'); }
  Enc& toast_col() { return ch('u'); }
  Enc& text_col(std::string_view s) { return ch('t').i32(static_cast<std::int32_t>(s.size())).raw(s); }
  Enc& bin_col(std::string_view s) { return ch('b').i32(static_cast<std::int32_t>(s.size())).raw(s); }
  Bytes bytes() const { return b_; }
  operator Bytes() const { return b_; }

 private:
  Enc& be(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) b_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    return *this;
  }
  Bytes b_;
};

constexpr pg::Oid kUsers = 16384;
constexpr pg::Oid kOrders = 16390;

// public.users(id int4 key, name text, bio text) replica identity default
Bytes users_relation(bool in_stream = false, pg::Xid xid = 0) {
  Enc e('R');
  if (in_stream) e.u32(xid);
  e.u32(kUsers).str("public").str("users").ch('d').i16(3);
  e.u8(1).str("id").u32(23).i32(-1);
  e.u8(0).str("name").u32(1043).i32(68);  // varchar(64): typmod 64 + 4
  e.u8(0).str("bio").u32(25).i32(-1);
  return e;
}

// shop.orders(id int8 key, blob bytea) replica identity full
Bytes orders_relation() {
  Enc e('R');
  e.u32(kOrders).str("shop").str("orders").ch('f').i16(2);
  e.u8(1).str("id").u32(20).i32(-1);
  e.u8(0).str("blob").u32(17).i32(-1);
  return e;
}

pg::RelationCache cache_with_relations() {
  pg::RelationCache cache;
  pg::decode(std::span<const std::uint8_t>(users_relation()), cache);
  pg::decode(std::span<const std::uint8_t>(orders_relation()), cache);
  return cache;
}

pg::Message dec(const Bytes& b, pg::RelationCache& cache, bool in_stream = false) {
  return pg::decode(std::span<const std::uint8_t>(b.data(), b.size()), cache, in_stream);
}

// Keeps the input buffer alive next to the decoded message: decoded string_views point into it.
// (A vector's heap buffer does not move when the vector is moved.)
struct Held {
  Bytes bytes;
  pg::Message msg;
};
Held hold(Bytes b, pg::RelationCache& cache, bool in_stream = false) {
  Held h{std::move(b), {}};
  h.msg = dec(h.bytes, cache, in_stream);
  return h;
}

// Test-only shorthand for one-off literals: the input is kept alive until the test binary exits,
// so views in the returned message stay valid for the rest of the test.
const pg::Message& keep(Bytes b, pg::RelationCache& cache, bool in_stream = false) {
  static std::deque<Held> kept;  // deque: push_back never moves existing elements
  kept.push_back(hold(std::move(b), cache, in_stream));
  return kept.back().msg;
}

// Runs decode and returns the DecodeError (fails the test if none, or another exception).
pg::DecodeError expect_error(const Bytes& b, pg::RelationCache& cache, bool in_stream = false) {
  try {
    dec(b, cache, in_stream);
  } catch (const pg::DecodeError& e) {
    return e;
  }
  ADD_FAILURE() << "expected DecodeError";
  return pg::DecodeError(0, 0, "none");
}

}  // namespace

// ---- helpers ------------------------------------------------------------------------------------

TEST(PgOutputHelpers, FormatsLsnLikePostgres) {
  EXPECT_EQ(pg::format_lsn(0x16B374D848ull), "16/B374D848");
  EXPECT_EQ(pg::format_lsn(0), "0/0");
  EXPECT_EQ(pg::format_lsn(0xFFFFFFFFFFFFFFFFull), "FFFFFFFF/FFFFFFFF");
  EXPECT_EQ(pg::format_lsn(0x100000000ull), "1/0");
  EXPECT_EQ(pg::parse_lsn("16/B374D848"), 0x16B374D848ull);
  EXPECT_EQ(pg::parse_lsn("16/b374d848"), 0x16B374D848ull);
  EXPECT_FALSE(pg::parse_lsn("16B374D848"));
  EXPECT_FALSE(pg::parse_lsn("/1"));
  EXPECT_FALSE(pg::parse_lsn("1/"));
  EXPECT_FALSE(pg::parse_lsn("1/123456789"));
  EXPECT_FALSE(pg::parse_lsn("1/xyz"));
}

TEST(PgOutputHelpers, ConvertsTimestamps) {
  EXPECT_EQ(pg::pg_timestamp_to_unix_ms(0), 946684800000);
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(0), "2000-01-01T00:00:00.000000Z");
  // 2024-02-29T12:34:56.789012Z = unix 1709210096.789012 s
  const std::int64_t ts = (1709210096LL - 946684800LL) * 1000000 + 789012;
  EXPECT_EQ(pg::pg_timestamp_to_unix_ms(ts), 1709210096789);
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(ts), "2024-02-29T12:34:56.789012Z");
  // Before the PostgreSQL epoch: floor, not truncation.
  EXPECT_EQ(pg::pg_timestamp_to_unix_ms(-1), 946684799999);
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(-1), "1999-12-31T23:59:59.999999Z");
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(-946684800LL * 1000000), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(pg::pg_timestamp_to_unix_ms(-946684800LL * 1000000), 0);
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(pg::kPgTimestampInfinity), "infinity");
  EXPECT_EQ(pg::pg_timestamp_to_iso8601(pg::kPgTimestampMinusInfinity), "-infinity");
  // No overflow / UB at the extremes next to infinity.
  (void)pg::pg_timestamp_to_unix_ms(INT64_MAX - 1);
  (void)pg::pg_timestamp_to_unix_ms(INT64_MIN + 1);
  EXPECT_FALSE(pg::pg_timestamp_to_iso8601(INT64_MAX - 1).empty());
  EXPECT_FALSE(pg::pg_timestamp_to_iso8601(INT64_MIN + 1).empty());
}

// ---- transaction framing ------------------------------------------------------------------------

TEST(PgOutputDecode, Begin) {
  pg::RelationCache cache;
  auto m = keep(Enc('B').u64(0x16B374D848).i64(762'000'000'123'456).u32(747), cache);
  auto& b = std::get<pg::Begin>(m);
  EXPECT_EQ(b.final_lsn, 0x16B374D848u);
  EXPECT_EQ(b.commit_ts, 762'000'000'123'456);
  EXPECT_EQ(b.xid, 747u);
}

TEST(PgOutputDecode, Commit) {
  pg::RelationCache cache;
  auto m = keep(Enc('C').u8(0).u64(0x100).u64(0x1A0).i64(-5), cache);
  auto& c = std::get<pg::Commit>(m);
  EXPECT_EQ(c.flags, 0);
  EXPECT_EQ(c.commit_lsn, 0x100u);
  EXPECT_EQ(c.end_lsn, 0x1A0u);
  EXPECT_EQ(c.commit_ts, -5);
}

TEST(PgOutputDecode, Origin) {
  pg::RelationCache cache;
  const Bytes b = Enc('O').u64(0xABCDEF).str("node_a");
  auto m = dec(b, cache);
  auto& o = std::get<pg::Origin>(m);
  EXPECT_EQ(o.commit_lsn, 0xABCDEFu);
  EXPECT_EQ(o.name, "node_a");
  // The view points into the input buffer.
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(o.name.data()), b.data() + 9);
}

// ---- relation, type -----------------------------------------------------------------------------

TEST(PgOutputDecode, RelationFillsCache) {
  pg::RelationCache cache;
  auto m = dec(users_relation(), cache);
  auto& rm = std::get<pg::RelationMessage>(m);
  EXPECT_FALSE(rm.xid);
  ASSERT_TRUE(rm.relation);
  const pg::Relation& r = *rm.relation;
  EXPECT_EQ(r.oid, kUsers);
  EXPECT_EQ(r.namespace_name, "public");
  EXPECT_EQ(r.name, "users");
  EXPECT_EQ(r.replica_identity, pg::ReplicaIdentity::Default);
  ASSERT_EQ(r.columns.size(), 3u);
  EXPECT_TRUE(r.columns[0].is_key());
  EXPECT_EQ(r.columns[0].name, "id");
  EXPECT_EQ(r.columns[0].type_oid, 23u);
  EXPECT_EQ(r.columns[0].type_modifier, -1);
  EXPECT_FALSE(r.columns[1].is_key());
  EXPECT_EQ(r.columns[1].name, "name");
  EXPECT_EQ(r.columns[1].type_oid, 1043u);
  EXPECT_EQ(r.columns[1].type_modifier, 68);
  EXPECT_EQ(r.columns[2].name, "bio");
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(kUsers), rm.relation);
}

TEST(PgOutputDecode, RelationReplacedMidStreamKeepsOldSnapshot) {
  pg::RelationCache cache;
  auto first = std::get<pg::RelationMessage>(dec(users_relation(), cache)).relation;
  // ALTER TABLE users ADD COLUMN age int4
  Enc e('R');
  e.u32(kUsers).str("public").str("users").ch('f').i16(4);
  e.u8(1).str("id").u32(23).i32(-1);
  e.u8(0).str("name").u32(1043).i32(68);
  e.u8(0).str("bio").u32(25).i32(-1);
  e.u8(0).str("age").u32(23).i32(-1);
  dec(e, cache);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find(kUsers)->columns.size(), 4u);
  EXPECT_EQ(cache.find(kUsers)->replica_identity, pg::ReplicaIdentity::Full);
  EXPECT_EQ(first->columns.size(), 3u);  // earlier snapshot untouched
  // Inserts now need 4 columns.
  auto ins = keep(Enc('I').u32(kUsers).ch('N').i16(4).text_col("1").null_col().null_col().text_col("42"), cache);
  EXPECT_EQ(std::get<pg::Insert>(ins).new_tuple.values[3].data, "42");
  auto err = expect_error(Enc('I').u32(kUsers).ch('N').i16(3).text_col("1").null_col().null_col(), cache);
  EXPECT_EQ(err.message_type(), 'I');
  EXPECT_EQ(err.offset(), 6u);
}

TEST(PgOutputDecode, RelationWithZeroColumnsAndEmptyNamespace) {
  pg::RelationCache cache;
  auto m = keep(Enc('R').u32(77).str("").str("t").ch('n').i16(0), cache);
  auto& r = *std::get<pg::RelationMessage>(m).relation;
  EXPECT_EQ(r.namespace_name, "");
  EXPECT_EQ(r.replica_identity, pg::ReplicaIdentity::Nothing);
  EXPECT_TRUE(r.columns.empty());
  auto ins = keep(Enc('I').u32(77).ch('N').i16(0), cache);
  EXPECT_TRUE(std::get<pg::Insert>(ins).new_tuple.values.empty());
}

TEST(PgOutputDecode, Type) {
  pg::RelationCache cache;
  auto h = hold(Enc('Y').u32(90001).str("public").str("mood"), cache);
  auto& t = std::get<pg::TypeMessage>(h.msg);
  EXPECT_FALSE(t.xid);
  EXPECT_EQ(t.oid, 90001u);
  EXPECT_EQ(t.namespace_name, "public");
  EXPECT_EQ(t.name, "mood");
}

// ---- DML ----------------------------------------------------------------------------------------

TEST(PgOutputDecode, InsertWithEveryColumnKind) {
  auto cache = cache_with_relations();
  auto h = hold(Enc('I').u32(kUsers).ch('N').i16(3).text_col("42").null_col().toast_col(), cache);
  auto& ins = std::get<pg::Insert>(h.msg);
  EXPECT_FALSE(ins.xid);
  EXPECT_EQ(ins.relation->name, "users");
  ASSERT_EQ(ins.new_tuple.values.size(), 3u);
  EXPECT_EQ(ins.new_tuple.values[0].kind, pg::Value::Kind::Text);
  EXPECT_EQ(ins.new_tuple.values[0].data, "42");
  EXPECT_TRUE(ins.new_tuple.values[1].is_null());
  EXPECT_FALSE(ins.new_tuple.values[1].is_unchanged_toast());
  EXPECT_TRUE(ins.new_tuple.values[2].is_unchanged_toast());
  EXPECT_FALSE(ins.new_tuple.values[2].is_null());

  const std::string blob("\x00\x01\xFF\x00z", 5);
  auto h2 = hold(Enc('I').u32(kOrders).ch('N').i16(2).bin_col(std::string_view("\0\0\0\0\0\0\0\x07", 8)).bin_col(blob), cache);
  auto& i2 = std::get<pg::Insert>(h2.msg);
  EXPECT_EQ(i2.new_tuple.values[0].kind, pg::Value::Kind::Binary);
  EXPECT_EQ(i2.new_tuple.values[0].data.size(), 8u);
  EXPECT_EQ(i2.new_tuple.values[1].kind, pg::Value::Kind::Binary);
  EXPECT_EQ(i2.new_tuple.values[1].data, blob);

  // Empty text is not NULL.
  auto h3 = hold(Enc('I').u32(kUsers).ch('N').i16(3).text_col("1").text_col("").null_col(), cache);
  auto& v = std::get<pg::Insert>(h3.msg).new_tuple.values[1];
  EXPECT_EQ(v.kind, pg::Value::Kind::Text);
  EXPECT_TRUE(v.data.empty());
}

TEST(PgOutputDecode, UpdateWithoutOldTuple) {
  auto cache = cache_with_relations();
  auto m = keep(Enc('U').u32(kUsers).ch('N').i16(3).text_col("1").text_col("bob").toast_col(), cache);
  auto& u = std::get<pg::Update>(m);
  EXPECT_EQ(u.old_kind, pg::OldTupleKind::None);
  EXPECT_FALSE(u.old_tuple);
  EXPECT_EQ(u.new_tuple.values[1].data, "bob");
  EXPECT_TRUE(u.new_tuple.values[2].is_unchanged_toast());
}

TEST(PgOutputDecode, UpdateWithOldKey) {
  auto cache = cache_with_relations();
  auto m = keep(Enc('U')
                   .u32(kUsers)
                   .ch('K').i16(3).text_col("1").null_col().null_col()
                   .ch('N').i16(3).text_col("2").text_col("bob").null_col(),
               cache);
  auto& u = std::get<pg::Update>(m);
  EXPECT_EQ(u.old_kind, pg::OldTupleKind::Key);
  ASSERT_TRUE(u.old_tuple);
  EXPECT_EQ(u.old_tuple->values[0].data, "1");
  EXPECT_TRUE(u.old_tuple->values[1].is_null());
  EXPECT_EQ(u.new_tuple.values[0].data, "2");
  EXPECT_TRUE(u.new_tuple.values[2].is_null());
}

TEST(PgOutputDecode, UpdateWithOldFullTuple) {
  auto cache = cache_with_relations();
  auto m = keep(Enc('U')
                   .u32(kOrders)
                   .ch('O').i16(2).text_col("7").bin_col("old")
                   .ch('N').i16(2).text_col("7").bin_col("new"),
               cache);
  auto& u = std::get<pg::Update>(m);
  EXPECT_EQ(u.relation->replica_identity, pg::ReplicaIdentity::Full);
  EXPECT_EQ(u.old_kind, pg::OldTupleKind::Full);
  EXPECT_EQ(u.old_tuple->values[1].data, "old");
  EXPECT_EQ(u.new_tuple.values[1].data, "new");
}

TEST(PgOutputDecode, DeleteWithKeyAndWithFullIdentity) {
  auto cache = cache_with_relations();
  auto m = keep(Enc('D').u32(kUsers).ch('K').i16(3).text_col("9").null_col().null_col(), cache);
  auto& d = std::get<pg::Delete>(m);
  EXPECT_EQ(d.old_kind, pg::OldTupleKind::Key);
  EXPECT_EQ(d.old_tuple.values[0].data, "9");
  EXPECT_TRUE(d.old_tuple.values[2].is_null());

  auto m2 = keep(Enc('D').u32(kOrders).ch('O').i16(2).text_col("7").null_col(), cache);
  auto& d2 = std::get<pg::Delete>(m2);
  EXPECT_EQ(d2.old_kind, pg::OldTupleKind::Full);
  EXPECT_EQ(d2.relation->name, "orders");
  EXPECT_EQ(d2.old_tuple.values[0].data, "7");
  EXPECT_TRUE(d2.old_tuple.values[1].is_null());
}

TEST(PgOutputDecode, TruncateOptions) {
  pg::RelationCache cache;
  for (std::uint8_t opts : {0, 1, 2, 3}) {
    auto m = keep(Enc('T').i32(2).u8(opts).u32(kUsers).u32(kOrders), cache);
    auto& t = std::get<pg::Truncate>(m);
    EXPECT_EQ(t.options, opts);
    EXPECT_EQ(t.cascade(), (opts & 1) != 0);
    EXPECT_EQ(t.restart_identity(), (opts & 2) != 0);
    EXPECT_EQ(t.relation_oids, (std::vector<pg::Oid>{kUsers, kOrders}));
  }
  auto m = keep(Enc('T').i32(0).u8(0), cache);
  EXPECT_TRUE(std::get<pg::Truncate>(m).relation_oids.empty());
}

TEST(PgOutputDecode, LogicalMessageTransactionalAndNot) {
  pg::RelationCache cache;
  const std::string payload("{\"k\":1}\0x", 9);
  auto m = keep(Enc('M').u8(1).u64(0x5000).str("outbox").i32(9).raw(payload), cache);
  auto& lm = std::get<pg::LogicalMessage>(m);
  EXPECT_TRUE(lm.transactional());
  EXPECT_EQ(lm.lsn, 0x5000u);
  EXPECT_EQ(lm.prefix, "outbox");
  EXPECT_EQ(lm.content, payload);
  EXPECT_FALSE(lm.xid);

  auto m2 = keep(Enc('M').u8(0).u64(0x6000).str("p").i32(0), cache);
  auto& lm2 = std::get<pg::LogicalMessage>(m2);
  EXPECT_FALSE(lm2.transactional());
  EXPECT_EQ(lm2.lsn, 0x6000u);
  EXPECT_TRUE(lm2.content.empty());
}

// ---- streaming (protocol version 2) -------------------------------------------------------------

TEST(PgOutputDecode, StreamFraming) {
  pg::RelationCache cache;
  auto s = std::get<pg::StreamStart>(keep(Enc('S').u32(900).u8(1), cache));
  EXPECT_EQ(s.xid, 900u);
  EXPECT_TRUE(s.first_segment);
  EXPECT_FALSE(std::get<pg::StreamStart>(keep(Enc('S').u32(900).u8(0), cache)).first_segment);
  EXPECT_TRUE(std::holds_alternative<pg::StreamStop>(keep(Enc('E'), cache)));
  auto c = std::get<pg::StreamCommit>(keep(Enc('c').u32(900).u8(0).u64(0x10).u64(0x20).i64(123), cache));
  EXPECT_EQ(c.xid, 900u);
  EXPECT_EQ(c.flags, 0);
  EXPECT_EQ(c.commit_lsn, 0x10u);
  EXPECT_EQ(c.end_lsn, 0x20u);
  EXPECT_EQ(c.commit_ts, 123);
  auto a = std::get<pg::StreamAbort>(keep(Enc('A').u32(900).u32(901), cache));
  EXPECT_EQ(a.xid, 900u);
  EXPECT_EQ(a.subtransaction_xid, 901u);
}

TEST(PgOutputDecode, StreamedMessagesCarryXid) {
  pg::RelationCache cache;
  constexpr pg::Xid x = 0xDEADBEEF;
  auto r = std::get<pg::RelationMessage>(dec(users_relation(true, x), cache, true));
  EXPECT_EQ(r.xid, x);
  EXPECT_EQ(r.relation->columns.size(), 3u);
  dec(orders_relation(), cache);

  auto y = std::get<pg::TypeMessage>(keep(Enc('Y').u32(x).u32(5).str("s").str("t"), cache, true));
  EXPECT_EQ(y.xid, x);
  EXPECT_EQ(y.oid, 5u);
  EXPECT_EQ(y.name, "t");

  auto i = std::get<pg::Insert>(keep(Enc('I').u32(x).u32(kUsers).ch('N').i16(3).text_col("1").null_col().toast_col(), cache, true));
  EXPECT_EQ(i.xid, x);
  EXPECT_EQ(i.new_tuple.values[0].data, "1");

  auto u = std::get<pg::Update>(keep(Enc('U').u32(x).u32(kOrders).ch('O').i16(2).text_col("1").null_col().ch('N').i16(2).text_col("1").bin_col("z"), cache, true));
  EXPECT_EQ(u.xid, x);
  EXPECT_EQ(u.old_kind, pg::OldTupleKind::Full);
  EXPECT_EQ(u.new_tuple.values[1].data, "z");

  auto d = std::get<pg::Delete>(keep(Enc('D').u32(x).u32(kUsers).ch('K').i16(3).text_col("1").null_col().null_col(), cache, true));
  EXPECT_EQ(d.xid, x);
  EXPECT_EQ(d.old_kind, pg::OldTupleKind::Key);

  auto t = std::get<pg::Truncate>(keep(Enc('T').u32(x).i32(1).u8(3).u32(kUsers), cache, true));
  EXPECT_EQ(t.xid, x);
  EXPECT_TRUE(t.cascade());
  EXPECT_TRUE(t.restart_identity());
  EXPECT_EQ(t.relation_oids, std::vector<pg::Oid>{kUsers});

  auto lm = std::get<pg::LogicalMessage>(keep(Enc('M').u32(x).u8(1).u64(7).str("p").i32(2).raw("hi"), cache, true));
  EXPECT_EQ(lm.xid, x);
  EXPECT_EQ(lm.content, "hi");

  // The same streamed Insert decoded without in_stream is misread and rejected, not accepted.
  EXPECT_THROW(keep(Enc('I').u32(x).u32(kUsers).ch('N').i16(3).text_col("1").null_col().toast_col(), cache, false),
               pg::DecodeError);
  // Begin/Commit have no xid prefix even in a stream.
  EXPECT_EQ(std::get<pg::Begin>(keep(Enc('B').u64(1).i64(2).u32(3), cache, true)).xid, 3u);
}

TEST(PgOutputDecode, StringViewOverload) {
  pg::RelationCache cache;
  const Bytes b = Enc('O').u64(1).str("x");
  const std::string s(b.begin(), b.end());
  EXPECT_EQ(std::get<pg::Origin>(pg::decode(std::string_view(s), cache)).name, "x");
}

// ---- malformed input ----------------------------------------------------------------------------

TEST(PgOutputErrors, EmptyAndUnknownType) {
  pg::RelationCache cache;
  auto e = expect_error(Bytes{}, cache);
  EXPECT_EQ(e.offset(), 0u);
  e = expect_error(Bytes{'Z', 0, 0}, cache);
  EXPECT_EQ(e.message_type(), 'Z');
  EXPECT_EQ(e.offset(), 0u);
  EXPECT_NE(std::string(e.what()).find("0x5A"), std::string::npos) << e.what();
  // Two-phase (protocol 3) messages are not supported and say so as unknown types.
  EXPECT_THROW(dec(Bytes{'b'}, cache), pg::DecodeError);
}

TEST(PgOutputErrors, UnknownColumnKind) {
  auto cache = cache_with_relations();
  auto e = expect_error(Enc('I').u32(kUsers).ch('N').i16(3).text_col("1").ch('x').null_col(), cache);
  EXPECT_EQ(e.message_type(), 'I');
  EXPECT_EQ(e.offset(), 14u);  // 1 type + 4 oid + 1 'N' + 2 ncols + 6 first column
  EXPECT_NE(std::string(e.what()).find("column kind"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("Insert ('I')"), std::string::npos) << e.what();
}

TEST(PgOutputErrors, NegativeAndOversizedLengths) {
  auto cache = cache_with_relations();
  auto e = expect_error(Enc('I').u32(kOrders).ch('N').i16(2).ch('t').i32(-1).null_col(), cache);
  EXPECT_EQ(e.offset(), 9u);
  EXPECT_NE(std::string(e.what()).find("negative length"), std::string::npos) << e.what();
  e = expect_error(Enc('I').u32(kOrders).ch('N').i16(2).ch('b').i32(1000).raw("abc"), cache);
  EXPECT_EQ(e.offset(), 9u);
  EXPECT_NE(std::string(e.what()).find("exceeds"), std::string::npos) << e.what();
  e = expect_error(Enc('I').u32(kOrders).ch('N').i16(2).ch('b').i32(INT32_MAX).raw("abc"), cache);
  e = expect_error(Enc('M').u8(0).u64(0).str("p").i32(-7), cache);
  EXPECT_EQ(e.message_type(), 'M');
  e = expect_error(Enc('I').u32(kOrders).ch('N').i16(-2), cache);
  EXPECT_EQ(e.offset(), 6u);
  e = expect_error(Enc('T').i32(-1).u8(0), cache);
  EXPECT_EQ(e.offset(), 1u);
  e = expect_error(Enc('R').u32(1).str("a").str("b").ch('d').i16(-1), cache);
}

TEST(PgOutputErrors, HugeCountsAreRejectedBeforeAllocating) {
  auto cache = cache_with_relations();
  // 2^31-1 relation OIDs announced, 4 bytes present: must not try to allocate 8 GiB.
  auto e = expect_error(Enc('T').i32(INT32_MAX).u8(0).u32(1), cache);
  EXPECT_EQ(e.message_type(), 'T');
  // 32767 columns announced on a relation with no bytes for them.
  expect_error(Enc('R').u32(5).str("a").str("b").ch('d').i16(32767), cache);
  EXPECT_FALSE(cache.find(5));
}

TEST(PgOutputErrors, TrailingGarbage) {
  auto cache = cache_with_relations();
  auto e = expect_error(Enc('E').u8(0), cache);
  EXPECT_EQ(e.offset(), 1u);
  EXPECT_NE(std::string(e.what()).find("trailing"), std::string::npos) << e.what();
  e = expect_error(Enc('I').u32(kOrders).ch('N').i16(2).null_col().null_col().u8(7), cache);
  EXPECT_EQ(e.offset(), 10u);
  // A Relation message with trailing bytes does not reach the cache.
  Bytes rel = Enc('R').u32(999).str("s").str("t").ch('d').i16(0);
  rel.push_back(0);
  expect_error(rel, cache);
  EXPECT_FALSE(cache.find(999));
}

TEST(PgOutputErrors, ColumnCountMismatchAndUnknownRelation) {
  auto cache = cache_with_relations();
  auto e = expect_error(Enc('I').u32(kUsers).ch('N').i16(2).null_col().null_col(), cache);
  EXPECT_EQ(e.offset(), 6u);
  EXPECT_NE(std::string(e.what()).find("public.users"), std::string::npos) << e.what();
  e = expect_error(Enc('U').u32(kUsers).ch('K').i16(1).null_col().ch('N').i16(3).null_col().null_col().null_col(), cache);
  EXPECT_EQ(e.message_type(), 'U');
  e = expect_error(Enc('I').u32(4242).ch('N').i16(0), cache);
  EXPECT_EQ(e.offset(), 1u);
  EXPECT_NE(std::string(e.what()).find("4242"), std::string::npos) << e.what();
  expect_error(Enc('D').u32(4242).ch('K').i16(0), cache);
  expect_error(Enc('U').u32(4242).ch('N').i16(0), cache);
}

TEST(PgOutputErrors, BadTupleTags) {
  auto cache = cache_with_relations();
  expect_error(Enc('I').u32(kOrders).ch('K').i16(2).null_col().null_col(), cache);
  expect_error(Enc('D').u32(kOrders).ch('N').i16(2).null_col().null_col(), cache);
  expect_error(Enc('U').u32(kOrders).ch('X').i16(2).null_col().null_col(), cache);
  // Old tuple followed by something other than 'N'.
  auto e = expect_error(Enc('U').u32(kOrders).ch('O').i16(2).null_col().null_col().ch('O').i16(2).null_col().null_col(), cache);
  EXPECT_EQ(e.offset(), 10u);
  // Missing string terminator.
  expect_error(Enc('O').u64(1).raw("abc"), cache);
  // Invalid replica identity.
  expect_error(Enc('R').u32(1).str("a").str("b").ch('x').i16(0), cache);
}

// ---- robustness: truncation at every byte, random mutations -------------------------------------

namespace {

struct Sample {
  Bytes bytes;
  bool in_stream;
};

std::vector<Sample> valid_samples() {
  constexpr pg::Xid x = 77;
  return {
      {Enc('B').u64(0x16B374D848).i64(1).u32(2), false},
      {Enc('C').u8(0).u64(1).u64(2).i64(3), false},
      {Enc('O').u64(1).str("origin"), false},
      {users_relation(), false},
      {users_relation(true, x), true},
      {orders_relation(), false},
      {Enc('Y').u32(1).str("public").str("mood"), false},
      {Enc('Y').u32(x).u32(1).str("").str("t"), true},
      {Enc('I').u32(kUsers).ch('N').i16(3).text_col("42").null_col().toast_col(), false},
      {Enc('I').u32(x).u32(kOrders).ch('N').i16(2).bin_col("12345678").bin_col(std::string_view("\0\1", 2)), true},
      {Enc('U').u32(kUsers).ch('N').i16(3).text_col("1").text_col("b").toast_col(), false},
      {Enc('U').u32(kUsers).ch('K').i16(3).text_col("1").null_col().null_col().ch('N').i16(3).text_col("2").text_col("").null_col(), false},
      {Enc('U').u32(x).u32(kOrders).ch('O').i16(2).text_col("7").bin_col("o").ch('N').i16(2).text_col("7").bin_col("n"), true},
      {Enc('D').u32(kUsers).ch('K').i16(3).text_col("9").null_col().null_col(), false},
      {Enc('D').u32(kOrders).ch('O').i16(2).text_col("7").bin_col("x"), false},
      {Enc('T').i32(2).u8(3).u32(kUsers).u32(kOrders), false},
      {Enc('T').u32(x).i32(1).u8(1).u32(kUsers), true},
      {Enc('M').u8(1).u64(5).str("outbox").i32(3).raw("abc"), false},
      {Enc('M').u32(x).u8(0).u64(5).str("").i32(0), true},
      {Enc('S').u32(x).u8(1), false},
      {Enc('E'), false},
      {Enc('c').u32(x).u8(0).u64(1).u64(2).i64(3), false},
      {Enc('A').u32(x).u32(x + 1), false},
  };
}

}  // namespace

TEST(PgOutputRobustness, SamplesDecode) {
  for (const auto& s : valid_samples()) {
    auto cache = cache_with_relations();
    EXPECT_NO_THROW(dec(s.bytes, cache, s.in_stream)) << "type " << char(s.bytes[0]);
  }
}

TEST(PgOutputRobustness, EveryStrictPrefixThrows) {
  for (const auto& s : valid_samples()) {
    for (std::size_t len = 0; len < s.bytes.size(); ++len) {
      auto cache = cache_with_relations();
      // Copy into an exactly-sized heap buffer so ASan catches any read past the prefix.
      auto* buf = new std::uint8_t[len == 0 ? 1 : len];
      std::copy_n(s.bytes.begin(), len, buf);
      try {
        pg::decode(std::span<const std::uint8_t>(buf, len), cache, s.in_stream);
        ADD_FAILURE() << "prefix of length " << len << " of a '" << char(s.bytes[0])
                      << "' message decoded";
      } catch (const pg::DecodeError& e) {
        EXPECT_LE(e.offset(), len);
      }
      delete[] buf;
      EXPECT_EQ(cache.size(), 2u);  // failed Relation decodes never touch the cache
    }
  }
}

TEST(PgOutputRobustness, RandomMutationsDecodeOrThrowDecodeError) {
  std::mt19937 rng(20240229);
  const auto samples = valid_samples();
  int decoded = 0, rejected = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    const auto& s = samples[rng() % samples.size()];
    Bytes b = s.bytes;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < flips; ++f) {
      switch (rng() % 4) {
        case 0: b[rng() % b.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8)); break;
        case 1: b[rng() % b.size()] = static_cast<std::uint8_t>(rng()); break;
        case 2: b[rng() % b.size()] = static_cast<std::uint8_t>(0xFF); break;
        default:
          if (b.size() > 1) b.resize(b.size() - 1 - rng() % (b.size() - 1));
          break;
      }
    }
    if (rng() % 8 == 0) b.push_back(static_cast<std::uint8_t>(rng()));
    auto cache = cache_with_relations();
    auto* buf = new std::uint8_t[b.size()];
    std::copy(b.begin(), b.end(), buf);
    try {
      auto m = pg::decode(std::span<const std::uint8_t>(buf, b.size()), cache, (rng() & 1) != 0);
      ++decoded;
      // Touch every view so ASan would see any out-of-range pointer.
      std::visit(
          [&](const auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            std::size_t sum = 0;
            auto touch = [&](std::string_view v) {
              for (char c : v) sum += static_cast<unsigned char>(c);
            };
            if constexpr (std::is_same_v<T, pg::Insert>) {
              for (auto& v : msg.new_tuple.values) touch(v.data);
            } else if constexpr (std::is_same_v<T, pg::Update>) {
              for (auto& v : msg.new_tuple.values) touch(v.data);
              if (msg.old_tuple)
                for (auto& v : msg.old_tuple->values) touch(v.data);
            } else if constexpr (std::is_same_v<T, pg::Delete>) {
              for (auto& v : msg.old_tuple.values) touch(v.data);
            } else if constexpr (std::is_same_v<T, pg::LogicalMessage>) {
              touch(msg.prefix);
              touch(msg.content);
            } else if constexpr (std::is_same_v<T, pg::Origin>) {
              touch(msg.name);
            } else if constexpr (std::is_same_v<T, pg::TypeMessage>) {
              touch(msg.namespace_name);
              touch(msg.name);
            }
            (void)sum;
          },
          m);
    } catch (const pg::DecodeError&) {
      ++rejected;
    }
    delete[] buf;
  }
  EXPECT_GT(rejected, 0);
  EXPECT_GT(decoded, 0);
  EXPECT_EQ(decoded + rejected, 6000);
}

TEST(PgOutputRobustness, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  auto cache = cache_with_relations();
  for (int iter = 0; iter < 3000; ++iter) {
    Bytes b(rng() % 48);
    for (auto& c : b) c = static_cast<std::uint8_t>(rng());
    if (!b.empty() && (rng() & 1)) {
      static constexpr char kTypes[] = "BCORYIUDTMSEcA";
      b[0] = static_cast<std::uint8_t>(kTypes[rng() % 14]);
    }
    try {
      pg::decode(std::span<const std::uint8_t>(b.data(), b.size()), cache, (rng() & 1) != 0);
    } catch (const pg::DecodeError&) {
    }
  }
  SUCCEED();
}
