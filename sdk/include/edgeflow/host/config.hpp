// Turns one component's YAML config into the JSON object its create() receives, checked
// against the component's declared options. Shared by the runtime and the test harness.
// Every error names file:line:col, the key path, what is wrong and how to fix it.
#pragma once

#include <edgeflow/abi.h>
#include <edgeflow/host/message.hpp>
#include <edgeflow/sdk/suggest.hpp>

#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace edgeflow::host {

inline std::string where(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

struct Diagnostics {
  std::vector<std::string> errors;
  void add(const std::string& file, const YAML::Mark& mark, const std::string& key,
           const std::string& message) {
    errors.push_back(where(file, mark) + ": " + (key.empty() ? "" : key + ": ") + message);
  }
  bool ok() const { return errors.empty(); }
};

// Key path -> "file:line:col", for plugins reporting errors in their own config.
using Locations = std::map<std::string, std::string>;

inline std::string join_key(const std::string& prefix, const std::string& key) {
  if (prefix.empty()) return key;
  if (!key.empty() && key[0] == '[') return prefix + key;
  return prefix + "." + key;
}

// Reads a regular file of at most max_bytes; false with the reason in `error` (`too_big_fix`
// ends the size error). Opened non-blocking and checked with fstat, so a FIFO or device is
// refused at once, never waited on or read without end.
inline bool read_regular_file(const std::string& path, uint64_t max_bytes, const std::string& too_big_fix,
                              std::string& out, std::string& error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    error = std::string("cannot read it: ") + std::strerror(errno);
    return false;
  }
  struct stat st {};
  bool ok = false;
  if (::fstat(fd, &st) != 0) {
    error = std::string("cannot read it: ") + std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    error = S_ISDIR(st.st_mode)  ? "is a directory, not a file"
            : S_ISFIFO(st.st_mode) ? "is a FIFO, not a regular file; only regular files are read"
                                   : "is a device or socket, not a regular file; only regular files are read";
  } else if (uint64_t(st.st_size) > max_bytes) {
    error = "is " + std::to_string(st.st_size) + " bytes, over the limit of " + std::to_string(max_bytes) +
            " bytes; " + too_big_fix;
  } else {
    out.clear();
    char buf[65536];
    ok = true;
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error = std::string("cannot read it: ") + std::strerror(errno);
        ok = false;
        break;
      }
      if (n == 0) break;
      // The file may grow between fstat and read.
      if (out.size() + size_t(n) > max_bytes) {
        error = "grew past the limit of " + std::to_string(max_bytes) + " bytes while being read; " + too_big_fix;
        ok = false;
        break;
      }
      out.append(buf, size_t(n));
    }
  }
  ::close(fd);
  return ok;
}

// What ${file:...} reads at most: keys, tokens and certificates, not data.
inline constexpr uint64_t kMaxInterpolatedFile = 1 << 20;

// Expands ${env:NAME} and ${file:/path}; "$${" is a literal "${". Other ${...} are left for
// expression templates.
inline bool interpolate(const std::string& in, std::string& out, std::string& error) {
  out.clear();
  for (size_t i = 0; i < in.size();) {
    if (in.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    bool env = in.compare(i, 6, "${env:") == 0;
    bool file = in.compare(i, 7, "${file:") == 0;
    if (!env && !file) {
      out += in[i++];
      continue;
    }
    size_t start = i + (env ? 6 : 7);
    size_t close = in.find('}', start);
    if (close == std::string::npos) {
      error = "unterminated ${" + std::string(env ? "env" : "file") + ":...}; close it with '}'";
      return false;
    }
    std::string name = in.substr(start, close - start);
    if (env) {
      const char* v = std::getenv(name.c_str());
      if (!v) {
        error = "environment variable " + name + " is not set; export it or give the value";
        return false;
      }
      out += v;
    } else {
      std::string content, why;
      if (!read_regular_file(name, kMaxInterpolatedFile, "${file:...} is for secrets and keys, not data", content,
                             why)) {
        error = "${file:" + name + "}: " + name + " " + why;
        return false;
      }
      while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
      out += content;
    }
    i = close + 1;
  }
  return true;
}

// "250ms", "5s", "2m", "1h", "1.5s" or a bare number of milliseconds.
inline bool parse_duration(std::string_view s, int64_t& ms) {
  if (s.empty()) return false;
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  double n = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || errno || n < 0 || !std::isfinite(n)) return false;
  std::string unit(end);
  double mult;
  if (unit.empty() || unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = 60000;
  else if (unit == "h") mult = 3600000;
  else if (unit == "us") mult = 0.001;
  else return false;
  ms = int64_t(std::llround(n * mult));
  return true;
}

// "64KiB", "10MB", "1GiB", "512" bytes.
inline bool parse_size(std::string_view s, uint64_t& bytes) {
  if (s.empty()) return false;
  std::string str(s);
  char* end = nullptr;
  errno = 0;
  double n = std::strtod(str.c_str(), &end);
  if (end == str.c_str() || errno || n < 0 || !std::isfinite(n)) return false;
  std::string unit(end);
  static const std::map<std::string, double> units = {
      {"", 1},         {"B", 1},           {"KB", 1e3},         {"MB", 1e6},
      {"GB", 1e9},     {"KiB", 1024.0},    {"MiB", 1048576.0},  {"GiB", 1073741824.0}};
  auto it = units.find(unit);
  if (it == units.end()) return false;
  bytes = uint64_t(std::llround(n * it->second));
  return true;
}

// " Did you mean 'x'?" when a known name is close to the given one.
inline std::string suggest(std::string_view given, const std::vector<std::string>& known) {
  std::string best = sdk::closest(given, known);
  return best.empty() ? "" : " Did you mean '" + best + "'?";
}

inline std::string list_names(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

inline const char* option_type_name(uint32_t t) {
  switch (t) {
    case EF_OPT_STRING: return "string";
    case EF_OPT_INT: return "integer";
    case EF_OPT_DOUBLE: return "number";
    case EF_OPT_BOOL: return "boolean";
    case EF_OPT_DURATION: return "duration";
    case EF_OPT_SIZE: return "size";
    case EF_OPT_ENUM: return "enum";
    case EF_OPT_STRING_LIST: return "list of strings";
    default: return "any";
  }
}

// Context for converting one component's config.
struct ConfigBuilder {
  const std::string& file;
  Diagnostics& diag;
  Locations& locations;
  // Values of secret options, so callers can scrub them from anything they print.
  std::set<std::string>* secrets = nullptr;

  // Scalars and nested values of EF_OPT_ANY, interpolated, to JSON.
  bool to_json(const YAML::Node& n, const std::string& key, Doc::AllocatorType& a, JValue& out,
               bool secret) {
    locations[key] = where(file, n.Mark());
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        out.SetNull();
        return true;
      case YAML::NodeType::Sequence: {
        out.SetArray();
        bool ok = true;
        for (size_t i = 0; i < n.size(); ++i) {
          JValue e;
          ok &= to_json(n[i], key + "[" + std::to_string(i) + "]", a, e, secret);
          out.PushBack(e, a);
        }
        return ok;
      }
      case YAML::NodeType::Map: {
        out.SetObject();
        bool ok = true;
        for (auto it = n.begin(); it != n.end(); ++it) {
          std::string k = it->first.as<std::string>();
          JValue e;
          ok &= to_json(it->second, join_key(key, k), a, e, secret);
          out.AddMember(JValue(k.c_str(), rapidjson::SizeType(k.size()), a), e, a);
        }
        return ok;
      }
      case YAML::NodeType::Scalar: break;
    }
    std::string text;
    if (!scalar(n, key, text, secret)) return false;
    // Plain (unquoted) YAML scalars keep their YAML type; quoted ones are strings.
    if (n.Tag() != "!") {
      if (text == "true" || text == "false") {
        out.SetBool(text == "true");
        return true;
      }
      if (text == "null" || text == "~") {
        out.SetNull();
        return true;
      }
      char* end = nullptr;
      errno = 0;
      long long ll = std::strtoll(text.c_str(), &end, 10);
      if (!text.empty() && *end == '\0' && !errno) {
        out.SetInt64(ll);
        return true;
      }
      double d = std::strtod(text.c_str(), &end);
      if (!text.empty() && *end == '\0' && !errno && std::isfinite(d)) {
        out.SetDouble(d);
        return true;
      }
    }
    out.SetString(text.c_str(), rapidjson::SizeType(text.size()), a);
    return true;
  }

  bool scalar(const YAML::Node& n, const std::string& key, std::string& out, bool secret) {
    std::string err;
    if (!interpolate(n.Scalar(), out, err)) {
      diag.add(file, n.Mark(), key, err);
      return false;
    }
    if (secret && secrets && !out.empty()) secrets->insert(out);
    return true;
  }

  void type_error(const YAML::Node& n, const std::string& key, const ef_option_spec& o,
                  const std::string& got, bool secret) {
    std::string msg = std::string("expected ") + option_type_name(o.type);
    msg += secret ? ", got a value that does not parse (not shown: secret)" : ", got '" + got + "'";
    if (o.example) msg += std::string("; for example: ") + o.name + ": " + o.example;
    diag.add(file, n.Mark(), key, msg);
  }

  void check_range(const YAML::Node& n, const std::string& key, const ef_option_spec& o, double v) {
    auto fmt = [](double x) {
      std::ostringstream s;
      s << x;
      return s.str();
    };
    if ((o.flags & EF_OPT_HAS_MIN) && (o.flags & EF_OPT_MIN_EXCLUSIVE) && !(v > o.min))
      diag.add(file, n.Mark(), key, "must be greater than " + fmt(o.min) + ", got " + fmt(v));
    else if ((o.flags & EF_OPT_HAS_MIN) && v < o.min)
      diag.add(file, n.Mark(), key, "must be at least " + fmt(o.min) + ", got " + fmt(v));
    if ((o.flags & EF_OPT_HAS_MAX) && (o.flags & EF_OPT_MAX_EXCLUSIVE) && !(v < o.max))
      diag.add(file, n.Mark(), key, "must be less than " + fmt(o.max) + ", got " + fmt(v));
    else if ((o.flags & EF_OPT_HAS_MAX) && v > o.max)
      diag.add(file, n.Mark(), key, "must be at most " + fmt(o.max) + ", got " + fmt(v));
  }

  // One option's value, converted to the option's type.
  void option_value(const YAML::Node& n, const std::string& key, const ef_option_spec& o,
                    Doc::AllocatorType& a, JValue& out) {
    bool secret = o.flags & EF_OPT_SECRET;
    if (o.type == EF_OPT_ANY) {
      to_json(n, key, a, out, secret);
      return;
    }
    locations[key] = where(file, n.Mark());
    if (o.type == EF_OPT_STRING_LIST) {
      if (!n.IsSequence()) {
        diag.add(file, n.Mark(), key, "expected a list of strings, for example: [a, b]");
        return;
      }
      out.SetArray();
      for (size_t i = 0; i < n.size(); ++i) {
        std::string s;
        std::string k = key + "[" + std::to_string(i) + "]";
        locations[k] = where(file, n[i].Mark());
        if (!n[i].IsScalar()) {
          diag.add(file, n[i].Mark(), k, "expected a string");
          continue;
        }
        if (scalar(n[i], k, s, secret))
          out.PushBack(JValue(s.c_str(), rapidjson::SizeType(s.size()), a), a);
      }
      return;
    }
    if (!n.IsScalar()) {
      diag.add(file, n.Mark(), key,
               std::string("expected ") + option_type_name(o.type) + ", got a " +
                   (n.IsMap() ? "map" : n.IsSequence() ? "list" : "null"));
      return;
    }
    std::string s;
    if (!scalar(n, key, s, secret)) return;
    char* end = nullptr;
    errno = 0;
    switch (o.type) {
      case EF_OPT_STRING:
        out.SetString(s.c_str(), rapidjson::SizeType(s.size()), a);
        return;
      case EF_OPT_ENUM: {
        std::vector<std::string> values;
        std::string vs = o.enum_values ? o.enum_values : "";
        for (size_t p = 0; p <= vs.size();) {
          size_t bar = vs.find('|', p);
          if (bar == std::string::npos) bar = vs.size();
          values.push_back(vs.substr(p, bar - p));
          p = bar + 1;
        }
        if (std::find(values.begin(), values.end(), s) == values.end()) {
          diag.add(file, n.Mark(), key,
                   "'" + s + "' is not one of: " + list_names(values) + "." + suggest(s, values));
          return;
        }
        out.SetString(s.c_str(), rapidjson::SizeType(s.size()), a);
        return;
      }
      case EF_OPT_BOOL:
        if (s == "true" || s == "yes" || s == "on") out.SetBool(true);
        else if (s == "false" || s == "no" || s == "off") out.SetBool(false);
        else type_error(n, key, o, s, secret);
        return;
      case EF_OPT_INT: {
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end || errno) return type_error(n, key, o, s, secret);
        check_range(n, key, o, double(v));
        out.SetInt64(v);
        return;
      }
      case EF_OPT_DOUBLE: {
        double v = std::strtod(s.c_str(), &end);
        if (s.empty() || *end || errno || !std::isfinite(v)) return type_error(n, key, o, s, secret);
        check_range(n, key, o, v);
        out.SetDouble(v);
        return;
      }
      case EF_OPT_DURATION: {
        int64_t ms = 0;
        if (!parse_duration(s, ms)) {
          diag.add(file, n.Mark(), key,
                   "expected a duration like 250ms, 5s, 2m or 1h, got '" + s + "'");
          return;
        }
        check_range(n, key, o, double(ms));
        out.SetInt64(ms);
        return;
      }
      case EF_OPT_SIZE: {
        uint64_t b = 0;
        if (!parse_size(s, b)) {
          diag.add(file, n.Mark(), key,
                   "expected a size like 512, 64KiB, 10MB or 1GiB, got '" + s + "'");
          return;
        }
        check_range(n, key, o, double(b));
        out.SetInt64(int64_t(b));
        return;
      }
      default:
        diag.add(file, n.Mark(), key, "option has an unknown type in the plugin's spec");
    }
  }

  // The whole config map of a component (keys in `skip`, like `type`, belong to the runtime).
  void build(const YAML::Node& node, const ef_component& comp, const std::string& prefix,
             const std::set<std::string>& skip, Doc& out) {
    out.SetObject();
    auto& a = out.GetAllocator();
    std::vector<std::string> known;
    for (uint32_t i = 0; i < comp.option_count; ++i) known.push_back(comp.options[i].name);
    std::set<std::string> seen;
    if (node.IsMap()) {
      for (auto it = node.begin(); it != node.end(); ++it) {
        std::string k = it->first.as<std::string>();
        if (skip.count(k)) continue;
        std::string key = join_key(prefix, k);
        const ef_option_spec* o = nullptr;
        for (uint32_t i = 0; i < comp.option_count; ++i)
          if (k == comp.options[i].name) o = &comp.options[i];
        if (!o) {
          diag.add(file, it->first.Mark(), key,
                   "unknown option '" + k + "' for " + kind_name(comp.kind) + " '" + comp.type +
                       "'." + suggest(k, known) +
                       (known.empty() ? " It takes no options." : " Known options: " + list_names(known)));
          continue;
        }
        seen.insert(k);
        JValue v;
        option_value(it->second, key, *o, a, v);
        // A blank token or key would authenticate nobody or everybody: never take it silently.
        if ((o->flags & EF_OPT_SECRET) && v.IsString() &&
            std::string_view(v.GetString(), v.GetStringLength()).find_first_not_of(" \t\r\n") == std::string_view::npos) {
          std::string raw = it->second.IsScalar() ? it->second.Scalar() : "";
          std::string from = raw.find("${") != std::string::npos ? " (" + raw + " came out blank)" : "";
          diag.add(file, it->second.Mark(), key,
                   "a secret cannot be empty or whitespace" + from + "; give a value or remove the option");
        }
        out.AddMember(JValue(o->name, a), v, a);
      }
    }
    for (uint32_t i = 0; i < comp.option_count; ++i) {
      const ef_option_spec& o = comp.options[i];
      if (seen.count(o.name)) continue;
      if (o.flags & EF_OPT_REQUIRED) {
        // Named by its full key path, like every other option error, at the map it is missing from.
        std::string fix = std::string("required option missing; add `") + o.name + ": " +
                          (o.example ? o.example : "<value>") + "`" + (o.doc ? std::string(" (") + o.doc + ")" : "");
        diag.add(file, node.Mark(), prefix.empty() ? std::string(o.name) : prefix + "." + o.name, fix);
        continue;
      }
      JValue v;
      if (o.default_value) {
        YAML::Node d = YAML::Load(o.default_value);
        Diagnostics quiet;
        Locations unused;
        ConfigBuilder inner{file, quiet, unused, nullptr};
        inner.option_value(d, join_key(prefix, o.name), o, a, v);
        if (!quiet.ok())
          diag.add(file, node.Mark(), join_key(prefix, o.name),
                   "the plugin's default '" + std::string(o.default_value) + "' is invalid: " +
                       quiet.errors[0]);
      }
      out.AddMember(JValue(o.name, a), v, a);
    }
  }

  static const char* kind_name(uint32_t kind) {
    switch (kind) {
      case EF_KIND_SOURCE: return "source";
      case EF_KIND_TRANSFORMER: return "transformer";
      case EF_KIND_SINK: return "sink";
      default: return "section";  // the runtime's own settings
    }
  }
};

}  // namespace edgeflow::host
