// Structured logs: one line per event with the flow and stage it concerns, as logfmt (default,
// for people) or JSON (for log shippers). Writes are whole lines, safe from any thread.
#pragma once

#include <edgeflow/abi.h>

#include <string>
#include <string_view>

namespace edgeflow {

enum class LogFormat { logfmt, json };

struct LogConfig {
  LogFormat format = LogFormat::logfmt;
  ef_log_level min_level = EF_LOG_INFO;
};

// UTC, millisecond precision: 2026-11-24T05:52:13.123Z
std::string iso_timestamp();

void configure_logging(const LogConfig& c);
bool log_enabled(ef_log_level level);
void log(ef_log_level level, std::string_view flow, std::string_view stage, std::string_view msg);

inline void log_info(std::string_view flow, std::string_view stage, std::string_view msg) {
  log(EF_LOG_INFO, flow, stage, msg);
}
inline void log_warn(std::string_view flow, std::string_view stage, std::string_view msg) {
  log(EF_LOG_WARN, flow, stage, msg);
}
inline void log_error(std::string_view flow, std::string_view stage, std::string_view msg) {
  log(EF_LOG_ERROR, flow, stage, msg);
}

}  // namespace edgeflow
