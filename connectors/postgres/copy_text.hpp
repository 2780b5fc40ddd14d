// Document values as fields of PostgreSQL's COPY text format, chosen by the column's kind.
//
// COPY is the sink's fast path for new rows: the server reads typed fields with no JSON to parse
// (half the cost of json_to_recordset, measured in docs/architecture.md). A value this cannot
// write exactly (bytea that is not base64) makes the row not copyable; the row then goes by
// the JSON statement, whose error names it.
#pragma once

#include <edgeflow/sdk/expr/value.hpp>
#include <edgeflow/sdk/host.hpp>

#include <string>
#include <string_view>

namespace edgeflow::pg {

enum class ColumnKind { plain, json, array, bytea, bytea_array };

inline ColumnKind column_kind(std::string_view type) {
  if (type == "json" || type == "jsonb") return ColumnKind::json;
  if (type == "bytea") return ColumnKind::bytea;
  if (type == "bytea[]") return ColumnKind::bytea_array;
  if (type.size() > 2 && type.substr(type.size() - 2) == "[]") return ColumnKind::array;
  return ColumnKind::plain;
}

// COPY text escapes: backslash, newline, carriage return and tab.
inline void copy_escape(std::string& out, std::string_view s) {
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    const char* esc = c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
    if (!esc) continue;
    out.append(s.data() + run, i - run);
    out += esc;
    run = i + 1;
  }
  out.append(s.data() + run, s.size() - run);
}

// The JSON text of a value (numbers a double cannot carry keep their text).
inline void append_json_text(std::string& out, sdk::Value v) {
  switch (v.type()) {
    case EF_TYPE_NULL: out += "null"; return;
    case EF_TYPE_BOOL: out += v.as_bool() ? "true" : "false"; return;
    case EF_TYPE_INT: out += std::to_string(v.as_int()); return;
    case EF_TYPE_DOUBLE:
      if (auto t = v.number_text(); !t.empty()) out += t;
      else sdk::expr::append_number(out, v.as_double());
      return;
    case EF_TYPE_STRING: sdk::expr::append_json_string(out, v.as_string()); return;
    case EF_TYPE_ARRAY:
      out += '[';
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        append_json_text(out, v.at(i));
      }
      out += ']';
      return;
    default:
      out += '{';
      for (size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        auto [name, member] = v.member(i);
        sdk::expr::append_json_string(out, name);
        out += ':';
        append_json_text(out, member);
      }
      out += '}';
  }
}

// A scalar's text as its column reads it: strings as they are, the rest as JSON.
inline void append_scalar_text(std::string& out, sdk::Value v) {
  if (v.is_string()) out += v.as_string();
  else append_json_text(out, v);
}

inline bool append_bytea_hex(std::string& out, std::string_view base64) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string bytes;
  if (!sdk::expr::decode_base64(base64, bytes)) return false;
  out += "\\x";
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return true;
}

// An array literal, {1,"a b",NULL,{2,3}}, every element but NULL quoted. false: not writable.
inline bool append_array_literal(std::string& out, sdk::Value v, bool bytea) {
  if (!v.is_array()) return false;
  out += '{';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    sdk::Value e = v.at(i);
    if (e.is_null()) {
      out += "NULL";
    } else if (e.is_array()) {
      if (!append_array_literal(out, e, bytea)) return false;
    } else {
      std::string text;
      if (bytea) {
        if (!e.is_string() || !append_bytea_hex(text, e.as_string())) return false;
      } else if (e.is_object()) {
        append_json_text(text, e);
      } else {
        append_scalar_text(text, e);
      }
      out += '"';
      for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    }
  }
  out += '}';
  return true;
}

// One field: \N for null, else the value's text, COPY-escaped. false: the value cannot be
// written exactly this way.
inline bool append_copy_field(std::string& out, sdk::Value v, ColumnKind kind) {
  if (!v || v.is_null()) {
    out += "\\N";
    return true;
  }
  std::string text;
  switch (kind) {
    case ColumnKind::json: append_json_text(text, v); break;
    case ColumnKind::bytea:
      if (!v.is_string() || !append_bytea_hex(text, v.as_string())) return false;
      break;
    case ColumnKind::array:
    case ColumnKind::bytea_array:
      if (!append_array_literal(text, v, kind == ColumnKind::bytea_array)) return false;
      break;
    case ColumnKind::plain: append_scalar_text(text, v); break;
  }
  copy_escape(out, text);
  return true;
}

}  // namespace edgeflow::pg
