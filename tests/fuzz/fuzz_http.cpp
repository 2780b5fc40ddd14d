// HTTP requests: a client's bytes → the server's request parser → answers, as the listener runs
// them: fed in pieces of the sizes the input chooses, body limits applied at the head, requests
// answered one after another until an error. Checks the framing invariants: nothing is read
// after an error, a Content-Length body is exactly that long, and every answer is well formed.
#include "http_parser.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace edgeflow::net;

namespace {

void check_answer(const Response& r) {
  std::string out;
  serialize(r, true, false, out);
  if (out.rfind("HTTP/1.1 ", 0) != 0 || out.find("\r\n\r\n") == std::string::npos) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte picks the read size (1..256 bytes), the second the body limit.
  size_t piece = size_t(data[0]) + 1;
  uint64_t limit = uint64_t(data[1]) * 64;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  ParseLimits limits;
  limits.max_head_bytes = 2048;
  RequestParser p(limits);
  std::string buffered;
  while (!rest.empty() || !buffered.empty()) {
    if (!rest.empty()) {
      size_t n = std::min(piece, rest.size());
      buffered.append(rest.substr(0, n));
      rest.remove_prefix(n);
    }
    std::string_view in = buffered;
    auto r = p.feed(in);
    if (r == RequestParser::Result::head_ready) {
      p.body_limit(limit);
      r = p.feed(in);
    }
    buffered.erase(0, buffered.size() - in.size());
    if (r == RequestParser::Result::failed) {
      if (p.status() < 400 || p.status() > 505 || p.error().empty()) std::abort();
      check_answer(error_response(p.status(), p.error()));
      const std::string_view next = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
      std::string_view more = next;
      if (p.feed(more) != RequestParser::Result::failed || more.size() != next.size()) std::abort();  // reads nothing more
      return 0;
    }
    if (r == RequestParser::Result::complete) {
      Request& req = p.request();
      if (req.body.size() > limit) std::abort();
      const std::string* cl = req.header("content-length");
      if (cl && req.body.size() != std::stoull(*cl)) std::abort();
      if (req.path.empty() || (req.path[0] != '/' && req.path != "*")) std::abort();
      check_answer(error_response(202, req.path));
      p.reset();
      continue;
    }
    if (rest.empty() && r == RequestParser::Result::need_more) break;
  }
  p.end_of_input();
  return 0;
}
