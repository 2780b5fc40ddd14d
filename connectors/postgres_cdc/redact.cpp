#include "redact.hpp"

#include <edgeflow/sdk/suggest.hpp>

#include <libpq-fe.h>

#include <algorithm>

namespace edgeflow::pg {

// Removes libpq's trailing newline(s) and the "ERROR:  " padding so messages read on one line.
std::string tidy(std::string_view msg) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ' || msg.back() == '\r'))
    msg.remove_suffix(1);
  std::string out;
  out.reserve(msg.size());
  for (std::size_t i = 0; i < msg.size(); ++i) {
    const char c = msg[i];
    if (c == '\n') {  // multi-line messages (DETAIL, HINT): keep them, on one line
      out += "; ";
      while (i + 1 < msg.size() && (msg[i + 1] == ' ' || msg[i + 1] == '\t')) ++i;
    } else if (c == ' ' && i + 1 < msg.size() && msg[i + 1] == ' ' && i > 0 && msg[i - 1] == ':') {
      continue;  // "ERROR:  x" -> "ERROR: x"
    } else {
      out.push_back(c);
    }
  }
  return out;
}

namespace {

void replace_all(std::string& s, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (std::size_t pos = s.find(what); pos != std::string::npos;
       pos = s.find(what, pos + with.size())) {
    s.replace(pos, what.size(), with);
  }
}

std::vector<std::string> conninfo_keywords() {
  std::vector<std::string> out;
  PQconninfoOption* defaults = PQconndefaults();
  if (defaults == nullptr) return out;
  for (const PQconninfoOption* o = defaults; o->keyword != nullptr; ++o) out.emplace_back(o->keyword);
  PQconninfoFree(defaults);
  return out;
}

// libpq names an unknown keyword after these; a keyword is the left of `key=value`, never a
// value, so it is shown (a password cannot be there) with the nearest real keyword.
bool names_unknown_keyword(std::string_view before_quote) {
  for (std::string_view p : {"invalid connection option ", "invalid URI query parameter: "})
    if (before_quote.size() >= p.size() && before_quote.substr(before_quote.size() - p.size()) == p) return true;
  return false;
}

}  // namespace

Redactor::Redactor(const std::string& dsn) : dsn_(dsn) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (opts == nullptr) {
    parse_error_ = err != nullptr ? redact_unparsed(err) +
                                        " (quoted parts other than keywords are hidden: they "
                                        "may hold the password)"
                                  : std::string("out of memory");
    if (err != nullptr) PQfreemem(err);
    return;
  }
  for (const PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    const std::string_view kw = o->keyword;
    if ((kw == "password" || kw == "sslpassword") && o->val != nullptr && *o->val != '\0')
      secrets_.emplace_back(o->val);
  }
  PQconninfoFree(opts);
}

std::string Redactor::operator()(std::string_view msg) const {
  std::string out = tidy(msg);
  replace_all(out, dsn_, "<connection string>");
  for (const auto& s : secrets_) replace_all(out, s, "********");
  return out;
}

// libpq's parse errors quote the offending piece, e.g. `missing "=" after "foo" in connection
// info string` or, for URIs, the whole URI. The password cannot be located in a string that
// does not parse, so every quoted piece except a keyword becomes "...".
std::string Redactor::redact_unparsed(std::string_view msg) {
  const std::vector<std::string> keywords = conninfo_keywords();
  std::string out;
  std::string suggestion;
  std::string m = tidy(msg);
  std::size_t pos = 0;
  while (pos < m.size()) {
    const std::size_t open = m.find('"', pos);
    const std::size_t close = open == std::string::npos ? open : m.find('"', open + 1);
    if (close == std::string::npos) {
      out.append(m, pos, std::string::npos);
      break;
    }
    out.append(m, pos, open + 1 - pos);
    const std::string_view inner = std::string_view(m).substr(open + 1, close - open - 1);
    const bool keyword = std::find(keywords.begin(), keywords.end(), inner) != keywords.end();
    // `missing "=" after ...`: a one-character quote is the syntax libpq expected; keep it.
    if (inner.size() <= 1 || keyword) {
      out += inner;
    } else if (names_unknown_keyword(std::string_view(m).substr(0, open))) {
      out += inner;
      suggestion = edgeflow::sdk::closest(inner, keywords);
    } else {
      out += "...";
    }
    out.push_back('"');
    pos = close + 1;
  }
  if (!suggestion.empty()) out += "; did you mean \"" + suggestion + "\"?";
  return out;
}

}  // namespace edgeflow::pg
