// Topic names, topic filters and MQTT's UTF-8 rules. A string the broker would call malformed
// must never be sent: a broker closes the connection on one (mosquitto does), which would fail
// every message in flight with it. So the checks are those of the spec's "MUST NOT" and
// "SHOULD NOT" lists together, as mosquitto enforces them: no U+0000, no surrogates, no
// overlong forms, no control characters (U+0001..U+001F, U+007F..U+009F), no non-characters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgeflow::mqtt {

// Why `s` is not an MQTT UTF-8 string, or nullopt when it is one.
inline std::optional<std::string> utf8_problem(std::string_view s) {
  if (s.size() > 65535) return "longer than 65535 bytes (" + std::to_string(s.size()) + ")";
  auto at = [](size_t i) { return " at byte " + std::to_string(i); };
  for (size_t i = 0; i < s.size();) {
    auto c = uint8_t(s[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xe0) == 0xc0) {
      cp = c & 0x1f;
      len = 2;
    } else if ((c & 0xf0) == 0xe0) {
      cp = c & 0x0f;
      len = 3;
    } else if ((c & 0xf8) == 0xf0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return "not valid UTF-8" + at(i);
    }
    if (i + len > s.size()) return "not valid UTF-8 (truncated sequence)" + at(i);
    for (size_t k = 1; k < len; ++k) {
      auto d = uint8_t(s[i + k]);
      if ((d & 0xc0) != 0x80) return "not valid UTF-8" + at(i);
      cp = cp << 6 | (d & 0x3f);
    }
    static constexpr uint32_t min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len]) return "not valid UTF-8 (overlong form)" + at(i);
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return "not valid UTF-8 (no such code point)" + at(i);
    if (cp == 0) return "contains a NUL character" + at(i);
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return "contains a control character" + at(i);
    if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe) return "contains a Unicode non-character" + at(i);
    i += len;
  }
  return std::nullopt;
}

// Why `t` cannot be a topic to publish to, or nullopt.
inline std::optional<std::string> topic_name_problem(std::string_view t) {
  if (t.empty()) return "the topic is empty";
  if (auto p = utf8_problem(t)) return "the topic is " + *p;
  size_t w = t.find_first_of("+#");
  if (w != std::string_view::npos)
    return std::string("the topic contains the wildcard '") + t[w] + "' at byte " + std::to_string(w) +
           " (wildcards are for subscriptions only)";
  return std::nullopt;
}

// Why `f` is not a valid topic filter (with an optional $share/<group>/ prefix), or nullopt.
inline std::optional<std::string> topic_filter_problem(std::string_view f) {
  if (f.empty()) return "a topic filter must not be empty";
  if (auto p = utf8_problem(f)) return "the topic filter is " + *p;
  std::string_view rest = f;
  if (f.substr(0, 7) == "$share/") {
    std::string_view after = f.substr(7);
    size_t slash = after.find('/');
    if (slash == std::string_view::npos || slash == 0)
      return "a shared subscription is $share/<group>/<filter>: the group name and the filter are both needed";
    std::string_view group = after.substr(0, slash);
    if (group.find_first_of("+#") != std::string_view::npos)
      return "the share group name \"" + std::string(group) + "\" must not contain '+' or '#'";
    rest = after.substr(slash + 1);
    if (rest.empty()) return "a shared subscription $share/" + std::string(group) + "/ needs a filter after the group";
  }
  size_t start = 0;
  for (;;) {
    size_t end = rest.find('/', start);
    std::string_view level = rest.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (level.find('#') != std::string_view::npos) {
      if (level != "#") return "'#' must be a whole level on its own (\"a/#\", not \"a#\")";
      if (end != std::string_view::npos) return "'#' must be the last level (\"a/#\", not \"#/a\")";
    }
    if (level.find('+') != std::string_view::npos && level != "+")
      return "'+' must be a whole level on its own (\"a/+/b\", not \"a+/b\")";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace edgeflow::mqtt
