// MQTT codec: bytes from a broker (or a peer posing as one) → frames → packets, in both protocol
// versions. A packet that decodes is encoded again where the codec can (PUBLISH), and must decode
// to the same fields: the codec neither crashes on hostile bytes nor changes what it forwards.
#include "codec.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace edgeflow::mqtt;

namespace {

void one(const Frame& f, Version v) {
  switch (f.type()) {
    case Type::connect: decode_connect(f); break;
    case Type::connack: decode_connack(f, v); break;
    case Type::publish: {
      Publish p = decode_publish(f, v);
      std::string again;
      encode_publish(again, v, p.topic, p.payload, p.qos, p.retain, p.dup, p.packet_id,
                     v == Version::v5 ? &p.props : nullptr);
      auto back = next_frame(again);
      if (!back) std::abort();
      Publish q = decode_publish(back->first, v);
      if (q.topic != p.topic || q.payload != p.payload || q.qos != p.qos || q.packet_id != p.packet_id) std::abort();
      break;
    }
    case Type::puback:
    case Type::pubrec:
    case Type::pubrel:
    case Type::pubcomp: decode_ack(f, v); break;
    case Type::subscribe: decode_subscribe(f, v); break;
    case Type::suback: decode_suback(f, v); break;
    case Type::unsubscribe: decode_unsubscribe(f, v); break;
    case Type::pingreq:
    case Type::pingresp: decode_ping(f); break;
    case Type::disconnect: decode_disconnect(f, v); break;
    default: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  Version v = data[0] & 1 ? Version::v5 : Version::v311;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    while (auto f = next_frame(in, 1 << 20)) {
      try {
        one(f->first, v);
      } catch (const DecodeError&) {
      }
      in.remove_prefix(f->second);
    }
  } catch (const DecodeError&) {
  }
  return 0;
}
