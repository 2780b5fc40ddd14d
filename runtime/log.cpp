#include "log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace edgeflow {
namespace {

LogConfig g_config;
std::mutex g_mutex;

const char* level_name(ef_log_level l) {
  switch (l) {
    case EF_LOG_DEBUG: return "debug";
    case EF_LOG_INFO: return "info";
    case EF_LOG_WARN: return "warn";
    default: return "error";
  }
}

}  // namespace

std::string iso_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = std::time_t(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms % 1000));
  return buf;
}

namespace {

void escaped(std::string& out, std::string_view s, bool json) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (json && static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
}

void field(std::string& out, const char* name, std::string_view value, bool json, bool first) {
  if (json) {
    out += first ? "{\"" : ",\"";
    out += name;
    out += "\":\"";
    escaped(out, value, true);
    out += '"';
    return;
  }
  if (!first) out += ' ';
  out += name;
  out += '=';
  bool quote = value.empty() || value.find_first_of(" \"=\\\n\t") != std::string_view::npos;
  if (quote) out += '"';
  escaped(out, value, false);
  if (quote) out += '"';
}

}  // namespace

void configure_logging(const LogConfig& c) { g_config = c; }

bool log_enabled(ef_log_level level) { return level >= g_config.min_level; }

void log(ef_log_level level, std::string_view flow, std::string_view stage, std::string_view msg) {
  if (!log_enabled(level)) return;
  bool json = g_config.format == LogFormat::json;
  std::string line;
  line.reserve(128 + msg.size());
  field(line, "ts", iso_timestamp(), json, true);
  field(line, "level", level_name(level), json, false);
  if (!flow.empty()) field(line, "flow", flow, json, false);
  if (!stage.empty()) field(line, "stage", stage, json, false);
  field(line, "msg", msg, json, false);
  line += json ? "}\n" : "\n";
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace edgeflow
