// Durable buffer records as read back from disk (runtime/buffer_record.hpp): any bytes either
// decode, and then encode to exactly the same bytes (the form is canonical), or are refused
// with a reason; never a crash, never an allocation the bytes do not pay for.
#include "buffer_record.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  edgeflow::host::Message m;
  std::string error;
  if (edgeflow::buffer::decode(in, m, error)) {
    if (edgeflow::buffer::encode(m) != in) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  return 0;
}
