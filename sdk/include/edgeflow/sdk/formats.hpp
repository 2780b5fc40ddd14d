// Checks of text formats whose grammar is exact and short: RFC 3339 dates and times, RFC 5321
// addresses, RFC 1123 host names, IPv4 and IPv6, RFC 3986 URIs, RFC 4122 UUIDs, RFC 6901
// pointers. The validate step asserts them as JSON Schema `format`s (format_assertion: true;
// idn-*, iri* and uri-template stay annotations); envelope checks CloudEvents attributes.
#pragma once

#include <arpa/inet.h>

#include <cctype>
#include <string>
#include <string_view>

namespace edgeflow::sdk::formats {


inline bool digits(std::string_view s, size_t at, size_t n, int& out) {
  if (at + n > s.size()) return false;
  out = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

inline bool date(std::string_view s) {
  int y, m, d;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-' || !digits(s, 0, 4, y) || !digits(s, 5, 2, m) || !digits(s, 8, 2, d))
    return false;
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + (m == 2 && leap);
}

// HH:MM:SS[.frac](Z|+HH:MM|-HH:MM); a leap second only at 23:59:60 UTC.
inline bool time(std::string_view s) {
  int h, m, sec;
  if (s.size() < 9 || s[2] != ':' || s[5] != ':' || !digits(s, 0, 2, h) || !digits(s, 3, 2, m) || !digits(s, 6, 2, sec))
    return false;
  size_t i = 8;
  if (i < s.size() && s[i] == '.') {
    size_t start = ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (i == start) return false;
  }
  if (i >= s.size()) return false;
  int oh = 0, om = 0, sign = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    if (i + 1 != s.size()) return false;
  } else if (s[i] == '+' || s[i] == '-') {
    sign = s[i] == '+' ? 1 : -1;
    if (s.size() != i + 6 || s[i + 3] != ':' || !digits(s, i + 1, 2, oh) || !digits(s, i + 4, 2, om)) return false;
    if (oh > 23 || om > 59) return false;
  } else {
    return false;
  }
  if (h > 23 || m > 59 || sec > 60) return false;
  if (sec == 60) {
    int utc = (h * 60 + m - sign * (oh * 60 + om)) % 1440;
    if (utc < 0) utc += 1440;
    return utc == 23 * 60 + 59;
  }
  return true;
}

inline bool date_time(std::string_view s) {
  return s.size() > 11 && (s[10] == 'T' || s[10] == 't') && date(s.substr(0, 10)) && time(s.substr(11));
}

inline bool hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  for (;;) {
    size_t end = s.find('.', start);
    std::string_view label = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

inline bool ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (parts < 4) {
    size_t start = i;
    int v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 3) v = v * 10 + (s[i++] - '0');
    if (i == start || v > 255 || (s[start] == '0' && i - start > 1)) return false;
    if (++parts < 4) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  return i == s.size();
}

inline bool ipv6(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(s).c_str(), &a) == 1;
}

inline bool email(std::string_view s) {
  size_t at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == s.size() || at > 64) return false;
  std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
  } else {
    if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) return false;
    for (char c : local)
      if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) == std::string_view::npos)
        return false;
  }
  if (domain.front() == '[' && domain.back() == ']') {
    std::string_view lit = domain.substr(1, domain.size() - 2);
    return lit.substr(0, 5) == "IPv6:" ? ipv6(lit.substr(5)) : ipv4(lit);
  }
  return hostname(domain);
}

inline bool uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// RFC 3986 characters, with each '%' starting a percent-encoding.
inline bool uri_chars(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2])))
        return false;
      i += 2;
    } else if (!std::isalnum(c) && std::string_view("-._~:/?#[]@!$&'()*+,;=").find(char(c)) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

inline bool uri_reference(std::string_view s) {
  if (!uri_chars(s)) return false;
  size_t hash = s.find('#');
  if (hash != std::string_view::npos && s.find('#', hash + 1) != std::string_view::npos) return false;
  // Brackets only around an IP literal in the authority.
  size_t open = s.find('[');
  if (open != std::string_view::npos && (open < 2 || s.substr(open - 2, 2) != "//")) {
    size_t auth = s.find("//");
    if (auth == std::string_view::npos || open < auth) return false;
  }
  return true;
}

inline bool uri(std::string_view s) {
  size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (size_t i = 1; i < colon; ++i)
    if (!std::isalnum(static_cast<unsigned char>(s[i])) && s[i] != '+' && s[i] != '-' && s[i] != '.') return false;
  return uri_reference(s.substr(colon + 1));
}

inline bool json_pointer(std::string_view s) {
  if (!s.empty() && s[0] != '/') return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '~' && (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
  return true;
}

inline bool relative_json_pointer(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 0 || (s[0] == '0' && i > 1)) return false;
  return (i == s.size()) || s.substr(i) == "#" || json_pointer(s.substr(i));
}


inline bool known_format(std::string_view f) {
  return f == "date-time" || f == "date" || f == "time" || f == "email" || f == "hostname" || f == "ipv4" ||
         f == "ipv6" || f == "uri" || f == "uri-reference" || f == "uuid" || f == "json-pointer" ||
         f == "relative-json-pointer" || f == "regex";
}

// For the formats known_format() names, except regex (the schema compiles those itself).
inline bool format_ok(std::string_view f, std::string_view s) {
  if (f == "date-time") return date_time(s);
  if (f == "date") return date(s);
  if (f == "time") return time(s);
  if (f == "email") return email(s);
  if (f == "hostname") return hostname(s);
  if (f == "ipv4") return ipv4(s);
  if (f == "ipv6") return ipv6(s);
  if (f == "uri") return uri(s);
  if (f == "uri-reference") return uri_reference(s);
  if (f == "uuid") return uuid(s);
  if (f == "json-pointer") return json_pointer(s);
  if (f == "relative-json-pointer") return relative_json_pointer(s);
  return true;
}

}  // namespace edgeflow::sdk::formats
