// What the HTTP source and sink share: JSON error bodies, hex and HMAC-SHA256 (OpenSSL),
// constant-time comparison, Retry-After parsing, and Poco's TLS set-up.
#pragma once

#include <edgeflow/sdk/expr/value.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <http_parser.hpp>

#include <Poco/DateTimeParser.h>
#include <Poco/Net/Context.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Timestamp.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace edgeflow::http {

using sdk::Context;
using sdk::Error;

inline std::string error_body(std::string_view what) { return net::error_json(what); }

inline std::string to_hex(const unsigned char* p, size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = hex[p[i] >> 4];
    out[2 * i + 1] = hex[p[i] & 15];
  }
  return out;
}

inline std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), int(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
            mac, &len))
    throw Error("HMAC-SHA256 failed (OpenSSL)");
  return to_hex(mac, len);
}

// Equal in time that does not depend on where the texts differ: both sides are hashed first, so
// neither the position of the first difference nor the expected length leaks.
inline bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char da[SHA256_DIGEST_LENGTH], db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

// Empty when `body` is one well-formed JSON value, else why not (no document is built).
inline std::string json_error(std::string_view body) {
  rapidjson::Reader reader;
  rapidjson::BaseReaderHandler<> ignore;
  rapidjson::MemoryStream ms(body.data(), body.size());
  rapidjson::ParseResult ok = reader.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseStopWhenDoneFlag>(ms, ignore);
  if (ok) {
    // kParseStopWhenDoneFlag stops after the value: anything but whitespace after it is an error.
    for (size_t i = ms.Tell(); i < body.size(); ++i)
      if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' && body[i] != '\t')
        return "unexpected text after the JSON value at byte " + std::to_string(i);
    return {};
  }
  return std::string(rapidjson::GetParseError_En(ok.Code())) + " at byte " + std::to_string(ok.Offset());
}

// Retry-After: delay-seconds or an HTTP date; nullopt when absent or unreadable.
inline std::optional<std::chrono::milliseconds> parse_retry_after(const std::string& v) {
  if (v.empty()) return std::nullopt;
  bool digits = v.find_first_not_of("0123456789") == std::string::npos;
  if (digits) {
    if (v.size() > 9) return std::chrono::hours(24 * 365);
    return std::chrono::seconds(std::stol(v));
  }
  // Poco's parser is lenient (it skips what it cannot read): a date has at least a time of day.
  if (v.find(':') == std::string::npos || v.find_first_of("0123456789") == std::string::npos) return std::nullopt;
  Poco::DateTime when;
  int tz = 0;
  // The three date forms HTTP allows (RFC 9110 5.6.7).
  if (!Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, v, when, tz) &&
      !Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::RFC850_FORMAT, v, when, tz) &&
      !Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::ASCTIME_FORMAT, v, when, tz))
    return std::nullopt;
  Poco::Timestamp::TimeDiff diff = when.timestamp() - Poco::Timestamp();  // microseconds
  return std::chrono::milliseconds(diff > 0 ? diff / 1000 : 0);
}

// Poco asks its SSLManager what to do with a server certificate that fails verification; the
// default handler would prompt on the console. Ours refuses, once per process.
inline void init_ssl_client() {
  static std::once_flag once;
  std::call_once(once, [] {
    Poco::Net::Context::Ptr dflt = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", "",
                                                          Poco::Net::Context::VERIFY_RELAXED, 9, true);
    Poco::Net::SSLManager::instance().initializeClient(nullptr, new Poco::Net::RejectCertificateHandler(false), dflt);
  });
}

}  // namespace edgeflow::http
