// libpq error messages fit for operators: on one line, and without the connection string's
// secrets (libpq quotes option values, and a URI it cannot parse is echoed whole).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::pg {

// Removes libpq's trailing newline(s) and the "ERROR:  " padding so messages read on one line.
std::string tidy(std::string_view msg);

class Redactor {
 public:
  explicit Redactor(const std::string& dsn);
  // Non-empty when libpq cannot parse the connection string: its message, redacted.
  const std::string& parse_error() const { return parse_error_; }
  // `msg` with the connection string and any password in it masked.
  std::string operator()(std::string_view msg) const;

 private:
  static std::string redact_unparsed(std::string_view msg);
  std::string dsn_;
  std::vector<std::string> secrets_;
  std::string parse_error_;
};

}  // namespace edgeflow::pg
