// HTTP/1.1 requests from hostile bytes (RFC 9112), incrementally: a head of bounded size, then a
// body framed by Content-Length or chunked transfer coding. Anything ambiguous is an error,
// never a guess: bare LF or CR, obsolete header folding, whitespace before a colon, a repeated
// or malformed Content-Length, both Content-Length and Transfer-Encoding, a malformed chunk. After
// an error the parser reads nothing more, so no byte behind it can become a request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::net {

struct Header {
  std::string name, value;
};

struct Request {
  std::string method;
  std::string target;  // as sent
  std::string path;    // the target's path, without query
  std::string query;   // after '?', without it
  bool http10 = false;
  bool keep_alive = true;
  bool expects_continue = false;
  std::vector<Header> headers;
  std::string body;
  std::string remote;          // "address:port" of the peer (set by the server)
  std::string remote_address;  // the peer's address alone

  // The first header of that name (case-insensitive), or null.
  const std::string* header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<Header> headers;
  int retry_after_s = 0;  // > 0: a Retry-After header
  bool close = false;     // close the connection after it
};

// The registered reason phrase of a status ("Bad Request"); "Unknown" for others.
const char* reason_phrase(int status);
// {"error": "<message>"}, the body of every error answer.
std::string error_json(std::string_view message);
Response error_response(int status, std::string_view message, int retry_after_s = 0);
// Status line, headers and (unless `head_only`) body of a complete answer.
void serialize(const Response& r, bool keep_alive, bool head_only, std::string& out);

struct ParseLimits {
  size_t max_head_bytes = 16384;  // request line and headers (and, apart, a chunked body's trailers)
  size_t max_headers = 100;
};

class RequestParser {
 public:
  enum class Result {
    need_more,   // more bytes are needed (all given were consumed, but a CR alone between requests)
    head_ready,  // the head is parsed: set the body limit (body_limit) before feeding more
    complete,    // request() holds the whole request; bytes after it were not consumed
    failed,      // status() and error() say why; nothing more is read
  };

  explicit RequestParser(ParseLimits limits = {}) : limits_(limits) {}

  // Consumes a prefix of `in` (removed from it) and says where the request stands.
  Result feed(std::string_view& in);
  // The body may not exceed this (413 otherwise); call after head_ready.
  void body_limit(uint64_t max_bytes);
  // No more bytes will come: a request cut short is an error (400).
  Result end_of_input();

  // Nothing of a request read yet (between requests on a keep-alive connection).
  bool idle() const { return state_ == State::idle; }
  bool reading_body() const { return state_ == State::body || state_ == State::chunk_size || state_ == State::chunk_data ||
                                     state_ == State::chunk_end || state_ == State::trailers; }
  Request& request() { return req_; }
  int status() const { return status_; }
  const std::string& error() const { return error_; }
  uint64_t expected_body() const { return content_length_; }
  // Ready for the next request on the connection.
  void reset();

 private:
  enum class State { idle, head, head_done, body, chunk_size, chunk_data, chunk_end, trailers, done, failed };

  Result fail(int status, std::string message);
  Result parse_head();
  Result feed_chunked(std::string_view& in);
  bool parse_request_line(std::string_view line);

  ParseLimits limits_;
  State state_ = State::idle;
  std::string head_;  // the head (or a chunk-size line, or trailers) until its end is seen
  Request req_;
  uint64_t content_length_ = 0;
  bool chunked_ = false;
  uint64_t max_body_ = 0;
  uint64_t chunk_left_ = 0;
  size_t trailer_bytes_ = 0;
  int status_ = 0;
  std::string error_;
};

}  // namespace edgeflow::net
