// Dead-letter envelopes as the dlq_store sink reads them (connectors/dlq_store/letter_store.hpp):
// any bytes from any flow either become a letter, whose JSON form parses again, or are refused
// with a reason; never a crash. The time parser sees every failed_at the bytes carry.
#include "letter_store.hpp"

#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  edgeflow::dlq::Letter l;
  std::string error;
  if (edgeflow::dlq::from_envelope(in, l, error)) {
    int64_t ms = 0;
    if (!edgeflow::dlq::parse_time(l.failed_at, ms) || ms != l.failed_ms) std::abort();
    rapidjson::Document d;
    std::string json = edgeflow::dlq::to_json(l);
    d.Parse(json.c_str(), json.size());
    if (d.HasParseError()) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  int64_t ms = 0;
  edgeflow::dlq::parse_time(in, ms);
  return 0;
}
