// Messages as durable buffer records: everything a sink receives comes back, and damaged or
// foreign bytes are refused with where and why.
#include "buffer_record.hpp"

#include <gtest/gtest.h>

using edgeflow::host::Message;
namespace buffer = edgeflow::buffer;

namespace {

std::string refusal(std::string_view record) {
  Message m;
  std::string error;
  EXPECT_FALSE(buffer::decode(record, m, error));
  return error;
}

}  // namespace

TEST(BufferRecord, EverythingASinkReceivesComesBack) {
  Message in;
  std::string payload = "{\"id\":1,\"bin\":\"\\u0000\"}";
  payload.push_back('\0');
  in.set_payload(payload.data(), payload.size());
  in.key = "k-\xff";
  in.content_type = "application/json";
  in.headers = {{"trace", "abc"}, {"trace", "repeated"}};
  in.meta = {{"kafka.offset", "42"}, {"empty", ""}};
  in.timestamp_ms = -62135596800000;  // year 1
  std::string record = buffer::encode(in);

  Message out;
  std::string error;
  ASSERT_TRUE(buffer::decode(record, out, error)) << error;
  EXPECT_EQ(out.payload_bytes(), payload);
  EXPECT_EQ(out.key, in.key);
  EXPECT_EQ(out.content_type, in.content_type);
  EXPECT_EQ(out.headers, in.headers);
  EXPECT_EQ(out.meta, in.meta);
  EXPECT_EQ(out.timestamp_ms, in.timestamp_ms);
  EXPECT_EQ(buffer::encode(out), record);
}

TEST(BufferRecord, DamagedOrForeignBytesAreRefusedWithTheReason) {
  Message in;
  in.set_payload("payload", 7);
  in.key = "key";
  std::string record = buffer::encode(in);
  EXPECT_EQ(refusal(record.substr(0, record.size() - 2)),
            "buffer record: the payload runs past the end (byte " + std::to_string(record.size() - 7) + " of " +
                std::to_string(record.size() - 2) + ")");
  EXPECT_EQ(refusal(record + "x"), "buffer record: 1 bytes after the payload");
  std::string v2 = record;
  v2[0] = 2;
  EXPECT_EQ(refusal(v2), "buffer record version 2, this edgeflow reads version 1");
  EXPECT_EQ(refusal(""), "buffer record: a version byte runs past the end (byte 0 of 0)");
  // A count the rest of the record cannot hold is refused before anything is reserved for it.
  std::string many = record.substr(0, 1 + 8 + 4 + 3 + 4);
  many += std::string("\xff\xff\x00\x00", 4);
  EXPECT_EQ(refusal(many), "buffer record: the headers: 65535 entries do not fit");
  many.replace(many.size() - 4, 4, std::string("\xff\xff\xff\xff", 4));
  EXPECT_EQ(refusal(many), "buffer record: the headers: 4294967295 entries, more than 65536");
}
