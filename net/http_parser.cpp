#include "http_parser.hpp"

#include <edgeflow/sdk/expr/value.hpp>

#include <algorithm>
#include <charconv>

namespace edgeflow::net {
namespace {

bool tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
}

bool token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return tchar(c); }); }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Field values: visible characters, obs-text, space and tab; never another control character.
bool field_value(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7f);
  });
}

// Shown in error messages: printable ASCII, the rest as '?', at most 60 characters.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 60)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 60) out += "...";
  return out;
}

}  // namespace

const std::string* Request::header(std::string_view name) const {
  for (auto& h : headers)
    if (iequals(h.name, name)) return &h.value;
  return nullptr;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 302: return "Found";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string error_json(std::string_view message) {
  std::string out = "{\"error\":";
  sdk::expr::append_json_string(out, message);
  return out + "}";
}

Response error_response(int status, std::string_view message, int retry_after_s) {
  Response r;
  r.status = status;
  r.body = error_json(message);
  r.retry_after_s = retry_after_s;
  return r;
}

void serialize(const Response& r, bool keep_alive, bool head_only, std::string& out) {
  out += "HTTP/1.1 " + std::to_string(r.status) + " " + reason_phrase(r.status) + "\r\nServer: edgeflow\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (r.retry_after_s > 0) out += "Retry-After: " + std::to_string(r.retry_after_s) + "\r\n";
  for (auto& h : r.headers) out += h.name + ": " + h.value + "\r\n";
  out += keep_alive && !r.close ? "\r\n" : "Connection: close\r\n\r\n";
  if (!head_only) out += r.body;
}

RequestParser::Result RequestParser::fail(int status, std::string message) {
  state_ = State::failed;
  status_ = status;
  error_ = std::move(message);
  head_.clear();
  return Result::failed;
}

void RequestParser::reset() {
  state_ = State::idle;
  head_.clear();
  req_ = Request{};
  content_length_ = 0;
  chunked_ = false;
  max_body_ = 0;
  chunk_left_ = 0;
  trailer_bytes_ = 0;
  status_ = 0;
  error_.clear();
}

void RequestParser::body_limit(uint64_t max_bytes) {
  max_body_ = max_bytes;
  if (state_ != State::head_done) return;
  if (!chunked_ && content_length_ > max_bytes) {
    fail(413, "the body is larger than " + std::to_string(max_bytes) + " bytes");
    return;
  }
  state_ = chunked_ ? State::chunk_size : content_length_ ? State::body : State::done;
}

RequestParser::Result RequestParser::end_of_input() {
  switch (state_) {
    case State::idle:
    case State::done:
      return state_ == State::done ? Result::complete : Result::need_more;
    case State::failed: return Result::failed;
    case State::head:
    case State::head_done:
      return fail(400, "the connection ended inside the request head");
    case State::body:
      return fail(400, "the body ended after " + std::to_string(req_.body.size()) + " of the " +
                           std::to_string(content_length_) + " bytes of its Content-Length");
    default:
      return fail(400, "the chunked body ended before its last chunk");
  }
}

RequestParser::Result RequestParser::feed(std::string_view& in) {
  for (;;) {
    switch (state_) {
      case State::failed: return Result::failed;
      case State::done: return Result::complete;
      case State::head_done: return Result::head_ready;
      case State::idle:
        // RFC 9112 2.2: empty lines before a request line are ignored.
        while (in.size() >= 2 && in[0] == '\r' && in[1] == '\n') in.remove_prefix(2);
        // A CR alone may be the first half of an empty line: left unconsumed until its LF comes.
        if (in.empty() || (in.size() == 1 && in[0] == '\r')) return Result::need_more;
        state_ = State::head;
        break;
      case State::head: {
        // The end of the head may straddle two reads: search from a little before the new bytes.
        size_t from = head_.size() >= 3 ? head_.size() - 3 : 0;
        size_t room = limits_.max_head_bytes + 4 - head_.size();
        head_.append(in.substr(0, room));
        size_t end = head_.find("\r\n\r\n", from);
        if (end == std::string::npos) {
          if (head_.size() > limits_.max_head_bytes)
            return fail(431, "the request head is larger than " + std::to_string(limits_.max_head_bytes) + " bytes");
          in.remove_prefix(std::min(room, in.size()));
          return Result::need_more;
        }
        // Give back what followed the head.
        size_t taken = std::min(room, in.size()) - (head_.size() - (end + 4));
        in.remove_prefix(taken);
        head_.resize(end + 2);  // keep the last line's CRLF
        Result r = parse_head();
        head_.clear();
        if (r == Result::failed) return r;
        state_ = State::head_done;
        return Result::head_ready;
      }
      case State::body: {
        uint64_t want = content_length_ - req_.body.size();
        size_t n = size_t(std::min<uint64_t>(want, in.size()));
        req_.body.append(in.substr(0, n));
        in.remove_prefix(n);
        if (req_.body.size() < content_length_) return Result::need_more;
        state_ = State::done;
        return Result::complete;
      }
      default: {
        Result r = feed_chunked(in);
        if (r != Result::need_more || in.empty()) return r;
      }
    }
  }
}

RequestParser::Result RequestParser::feed_chunked(std::string_view& in) {
  while (!in.empty()) {
    switch (state_) {
      case State::chunk_size:
      case State::trailers: {
        size_t lf = in.find('\n');
        size_t n = lf == std::string_view::npos ? in.size() : lf + 1;
        head_.append(in.substr(0, n));
        in.remove_prefix(n);
        bool trailer = state_ == State::trailers;
        size_t cap = trailer ? limits_.max_head_bytes : 1024;
        if ((trailer ? trailer_bytes_ + head_.size() : head_.size()) > cap)
          return fail(trailer ? 431 : 400, trailer ? "the chunked body's trailers are too large" : "a chunk-size line is too long");
        if (lf == std::string_view::npos) return Result::need_more;
        if (head_.size() < 2 || head_[head_.size() - 2] != '\r' ||
            head_.find_first_of("\r\n") != head_.size() - 2)
          return fail(400, "line ends in a chunked body must be CRLF");
        std::string_view line(head_.data(), head_.size() - 2);
        if (trailer) {
          trailer_bytes_ += head_.size();
          if (line.empty()) {
            head_.clear();
            state_ = State::done;
            return Result::complete;
          }
          size_t colon = line.find(':');
          if (line[0] == ' ' || line[0] == '\t') return fail(400, "obsolete line folding in a trailer is not accepted");
          if (colon == std::string_view::npos || !token(line.substr(0, colon)) || !field_value(line.substr(colon + 1)))
            return fail(400, "malformed trailer field: " + shown(line));
          head_.clear();
          continue;
        }
        // chunk-size [ chunk-ext ]: hex digits, then nothing or ';' extensions (ignored).
        size_t digits = 0;
        uint64_t size = 0;
        while (digits < line.size() && std::isxdigit(static_cast<unsigned char>(line[digits]))) {
          if (digits == 15) return fail(400, "a chunk size is too large");
          char c = line[digits++];
          size = size * 16 + uint64_t(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        std::string_view rest = line.substr(digits), ext = trim_ows(rest);
        if (digits == 0 || (!rest.empty() && (ext.empty() || ext[0] != ';')))
          return fail(400, "malformed chunk size: '" + shown(line) + "'");
        if (!field_value(rest)) return fail(400, "malformed chunk extension");
        head_.clear();
        if (size == 0) {
          state_ = State::trailers;
          continue;
        }
        if (req_.body.size() + size > max_body_)
          return fail(413, "the body is larger than " + std::to_string(max_body_) + " bytes");
        chunk_left_ = size;
        state_ = State::chunk_data;
        break;
      }
      case State::chunk_data: {
        size_t n = size_t(std::min<uint64_t>(chunk_left_, in.size()));
        req_.body.append(in.substr(0, n));
        in.remove_prefix(n);
        chunk_left_ -= n;
        if (chunk_left_ == 0) state_ = State::chunk_end;
        break;
      }
      case State::chunk_end: {
        size_t n = std::min(2 - head_.size(), in.size());
        head_.append(in.substr(0, n));
        in.remove_prefix(n);
        if (head_.size() < 2) return Result::need_more;
        if (head_ != "\r\n") return fail(400, "a chunk's data is not followed by CRLF");
        head_.clear();
        state_ = State::chunk_size;
        break;
      }
      default: return Result::need_more;
    }
  }
  return Result::need_more;
}

bool RequestParser::parse_request_line(std::string_view line) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    fail(400, "malformed request line: '" + shown(line) + "' (expected METHOD TARGET HTTP/1.1)");
    return false;
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1), version = line.substr(sp2 + 1);
  if (!token(method)) {
    fail(400, "malformed method: '" + shown(method) + "'");
    return false;
  }
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
    fail(400, "malformed request target: '" + shown(target) + "'");
    return false;
  }
  if (version == "HTTP/1.0") req_.http10 = true;
  else if (version != "HTTP/1.1") {
    if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && std::isdigit(static_cast<unsigned char>(version[5])) &&
        version[6] == '.' && std::isdigit(static_cast<unsigned char>(version[7])))
      fail(505, "only HTTP/1.1 and HTTP/1.0 are served, not " + std::string(version));
    else fail(400, "malformed HTTP version: '" + shown(version) + "'");
    return false;
  }
  req_.method = method;
  req_.target = target;
  std::string_view path = target;
  // absolute-form (RFC 9112 3.2.2): the path is what follows the authority.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (path.size() > scheme.size() && iequals(path.substr(0, scheme.size()), scheme)) {
      size_t slash = path.find_first_of("/?", scheme.size());
      path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    }
  }
  if (path[0] != '/' && !(path == "*" && method == "OPTIONS")) {
    fail(400, "the request target must be a path starting with '/': '" + shown(target) + "'");
    return false;
  }
  size_t q = path.find('?');
  req_.path = path.substr(0, q);
  if (q != std::string_view::npos) req_.query = path.substr(q + 1);
  if (req_.path.empty()) req_.path = "/";
  return true;
}

RequestParser::Result RequestParser::parse_head() {
  std::string_view head = head_;
  // Every line ends in CRLF: a bare CR or LF is how requests get smuggled past a proxy.
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r' && (i + 1 >= head.size() || head[i + 1] != '\n')) return fail(400, "a bare CR in the request head");
    if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) return fail(400, "line ends in the request head must be CRLF");
  }
  size_t eol = head.find("\r\n");
  if (!parse_request_line(head.substr(0, eol))) return Result::failed;
  head.remove_prefix(eol + 2);
  int content_lengths = 0, transfer_encodings = 0, hosts = 0;
  bool close = false, keep_alive = false;
  std::string_view te;
  while (!head.empty()) {
    eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (line[0] == ' ' || line[0] == '\t') return fail(400, "obsolete line folding (a header line starting with whitespace) is not accepted");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "a header line without ':': '" + shown(line) + "'");
    std::string_view name = line.substr(0, colon), value = trim_ows(line.substr(colon + 1));
    if (!token(name)) return fail(400, "malformed header name: '" + shown(name) + "' (no whitespace before ':')");
    if (!field_value(value)) return fail(400, "control characters in the value of header " + std::string(name));
    if (req_.headers.size() >= limits_.max_headers)
      return fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields");
    if (iequals(name, "content-length")) {
      if (++content_lengths > 1) return fail(400, "repeated Content-Length");
      uint64_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || value.size() > 18 || ec != std::errc() || p != value.data() + value.size())
        return fail(400, "malformed Content-Length: '" + shown(value) + "'");
      content_length_ = n;
    } else if (iequals(name, "transfer-encoding")) {
      if (++transfer_encodings > 1) return fail(400, "repeated Transfer-Encoding");
      te = value;
    } else if (iequals(name, "host")) {
      if (++hosts > 1) return fail(400, "repeated Host");
    } else if (iequals(name, "connection")) {
      std::string_view rest = value;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::string_view opt = trim_ows(rest.substr(0, comma));
        if (iequals(opt, "close")) close = true;
        else if (iequals(opt, "keep-alive")) keep_alive = true;
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else if (iequals(name, "expect")) {
      if (!iequals(value, "100-continue")) return fail(417, "only 'Expect: 100-continue' is understood");
      req_.expects_continue = true;
    }
    req_.headers.push_back({std::string(name), std::string(value)});
  }
  req_.keep_alive = !close && (keep_alive || !req_.http10);
  if (!req_.http10 && hosts == 0) return fail(400, "HTTP/1.1 requests need a Host header");
  if (transfer_encodings) {
    if (content_lengths) return fail(400, "both Content-Length and Transfer-Encoding: the body's length is ambiguous");
    if (req_.http10) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (!iequals(te, "chunked")) return fail(501, "only the chunked transfer coding is understood, not '" + shown(te) + "'");
    chunked_ = true;
  }
  return Result::head_ready;
}

}  // namespace edgeflow::net
