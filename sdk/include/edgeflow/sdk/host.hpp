// Thin C++ views over the host callbacks: Value, Message, Batch, Context.
// They own nothing; lifetimes are those written in abi.h.
#pragma once

#include <edgeflow/abi.h>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace edgeflow::sdk {

// Set once by edgeflow_plugin_init (or by the test harness) before any hook runs.
inline const ef_host_api* g_host = nullptr;
inline const ef_host_api& host() { return *g_host; }

// Whether the host has the member `field` of ef_host_api (a host built for an older ABI has not).
#define EDGEFLOW_HOST_HAS(field) \
  (host().struct_size >= offsetof(ef_host_api, field) + sizeof(host().field) && host().field)

// Why host().message_doc(m) returned NULL; a generic reason from a host older than ABI 1.2.
inline std::string message_doc_error(ef_message* m) {
  if (EDGEFLOW_HOST_HAS(message_doc_error)) {
    size_t n = 0;
    if (const char* e = host().message_doc_error(m, &n)) return std::string(e, n);
  }
  return "payload is not JSON";
}

// Thrown by plugin code; the trampolines turn it into EF_ERROR plus this message.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Message;

class Value {
 public:
  Value() = default;
  explicit Value(const ef_value* v) : v_(const_cast<ef_value*>(v)) {}
  explicit operator bool() const { return v_ != nullptr; }
  ef_value* raw() const { return v_; }

  ef_type type() const { return v_ ? ef_type(host().value_type(v_)) : EF_TYPE_NULL; }
  bool is_null() const { return type() == EF_TYPE_NULL; }
  bool is_string() const { return type() == EF_TYPE_STRING; }
  bool is_object() const { return type() == EF_TYPE_OBJECT; }
  bool is_array() const { return type() == EF_TYPE_ARRAY; }
  bool is_number() const { return type() == EF_TYPE_INT || type() == EF_TYPE_DOUBLE; }
  // The type as expressions and error messages name it: null, bool, int, float, string, array, object.
  const char* type_name() const {
    switch (type()) {
      case EF_TYPE_NULL: return "null";
      case EF_TYPE_BOOL: return "bool";
      case EF_TYPE_INT: return "int";
      case EF_TYPE_DOUBLE: return "float";
      case EF_TYPE_STRING: return "string";
      case EF_TYPE_ARRAY: return "array";
      default: return "object";
    }
  }
  bool as_bool() const { return host().value_bool(v_) != 0; }
  int64_t as_int() const { return host().value_int(v_); }
  double as_double() const { return host().value_double(v_); }
  std::string_view as_string() const {
    size_t n = 0;
    const char* s = host().value_string(v_, &n);
    return {s, n};
  }
  // The exact text of a number a double cannot carry (see abi.h, value_number_text); empty
  // for any other value.
  std::string_view number_text() const {
    size_t n = 0;
    const char* t = v_ && EDGEFLOW_HOST_HAS(value_number_text) ? host().value_number_text(v_, &n) : nullptr;
    return t ? std::string_view(t, n) : std::string_view();
  }
  size_t size() const { return v_ ? host().value_size(v_) : 0; }
  Value at(size_t i) const { return Value(host().value_at(v_, i)); }
  Value operator[](std::string_view name) const {
    return v_ ? Value(host().value_find(v_, name.data(), name.size())) : Value();
  }
  // i-th member of an object: name and value.
  std::pair<std::string_view, Value> member(size_t i) const {
    const char* n = nullptr;
    size_t len = 0;
    ef_value* v = host().value_member_at(v_, i, &n, &len);
    return {std::string_view(n, len), Value(v)};
  }

 private:
  ef_value* v_ = nullptr;
};

class Message {
 public:
  Message() = default;
  explicit Message(ef_message* m) : m_(m) {}
  ef_message* raw() const { return m_; }
  explicit operator bool() const { return m_ != nullptr; }

  std::string_view payload() const {
    size_t n = 0;
    const char* p = host().message_payload(m_, &n);
    return {p, n};
  }
  void set_payload(std::string_view p) const { host().message_set_payload(m_, p.data(), p.size()); }
  std::string_view key() const {
    size_t n = 0;
    const char* p = host().message_key(m_, &n);
    return {p, n};
  }
  void set_key(std::string_view k) const { host().message_set_key(m_, k.data(), k.size()); }
  std::string_view content_type() const {
    size_t n = 0;
    const char* p = host().message_content_type(m_, &n);
    return {p, n};
  }
  void set_content_type(std::string_view c) const {
    host().message_set_content_type(m_, c.data(), c.size());
  }
  int64_t timestamp_ms() const { return host().message_timestamp_ms(m_); }
  void set_timestamp_ms(int64_t t) const { host().message_set_timestamp_ms(m_, t); }
  void set_token(uint64_t t) const { host().message_set_token(m_, t); }

  size_t header_count() const { return host().message_header_count(m_); }
  std::pair<std::string_view, std::string_view> header_at(size_t i) const {
    ef_header_view h = host().message_header_at(m_, i);
    return {{h.name, h.name_len}, {h.value, h.value_len}};
  }
  // Empty view with data()==nullptr when absent.
  std::string_view header(std::string_view name) const {
    size_t n = 0;
    const char* v = host().message_header(m_, name.data(), name.size(), &n);
    return v ? std::string_view(v, n) : std::string_view();
  }
  void set_header(std::string_view name, std::string_view value) const {
    host().message_set_header(m_, name.data(), name.size(), value.data(), value.size());
  }
  void remove_header(std::string_view name) const {
    host().message_remove_header(m_, name.data(), name.size());
  }
  std::string_view meta(std::string_view name) const {
    size_t n = 0;
    const char* v = host().message_meta(m_, name.data(), name.size(), &n);
    return v ? std::string_view(v, n) : std::string_view();
  }
  void set_meta(std::string_view name, std::string_view value) const {
    host().message_set_meta(m_, name.data(), name.size(), value.data(), value.size());
  }

  // Document root; throws Error, with the reason, if the payload is not I-JSON.
  Value doc() const {
    ef_value* v = host().message_doc(m_);
    if (!v) throw Error(doc_error());
    return Value(v);
  }
  // Why the last doc() (or host().message_doc) found no document: "payload is not JSON at
  // byte 3: ...", "payload is not I-JSON: the member name ... appears twice ...".
  std::string doc_error() const { return message_doc_error(m_); }
  Value reset_doc() const { return Value(host().message_doc_reset(m_)); }
  Value get(std::string_view path) const {
    return Value(host().doc_get_path(m_, path.data(), path.size()));
  }
  // The value at path, made if absent (null), with the objects and array elements on the way.
  // Whatever stands in the way is replaced: put("a.b") on {"a":1} makes a an object. NULL
  // (an invalid Value) only if the payload is not JSON or the path is malformed.
  Value put(std::string_view path) const {
    return Value(host().doc_set_path(m_, path.data(), path.size()));
  }
  // put() that replaces nothing but null: an invalid Value if a value on the way is not the
  // object or array the path needs ({"a":1} for "a.b", {"a":{}} for "a[0]").
  Value try_put(std::string_view path) const {
    for (size_t i = 0; i < path.size(); ++i) {
      if (i == 0 || (path[i] != '.' && path[i] != '[')) continue;
      Value on_the_way = get(path.substr(0, i));
      if (!on_the_way || on_the_way.is_null()) break;  // from here on, put() only makes things
      if (path[i] == '.' ? !on_the_way.is_object() : !on_the_way.is_array()) return Value();
    }
    return put(path);
  }
  bool remove(std::string_view path) const {
    return host().doc_remove_path(m_, path.data(), path.size()) != 0;
  }

  // Mutators of a value inside this message's document.
  void set(Value v, std::nullptr_t) const { host().value_set_null(m_, v.raw()); }
  void set(Value v, bool b) const { host().value_set_bool(m_, v.raw(), b ? 1 : 0); }
  void set(Value v, int64_t i) const { host().value_set_int(m_, v.raw(), i); }
  void set(Value v, int i) const { host().value_set_int(m_, v.raw(), i); }
  void set(Value v, double d) const { host().value_set_double(m_, v.raw(), d); }
  void set(Value v, std::string_view s) const {
    host().value_set_string(m_, v.raw(), s.data(), s.size());
  }
  void set(Value v, const char* s) const { set(v, std::string_view(s)); }
  // A JSON number written as text, kept exactly; false if it is not one. A host older than
  // ABI 1.3 gets the nearest double.
  bool set_number(Value v, std::string_view text) const {
    if (EDGEFLOW_HOST_HAS(value_set_number_text))
      return host().value_set_number_text(m_, v.raw(), text.data(), text.size()) != 0;
    double d = 0;
    auto r = std::from_chars(text.data(), text.data() + text.size(), d);
    if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return false;
    set(v, d);
    return true;
  }
  void make_object(Value v) const { host().value_set_object(m_, v.raw()); }
  void make_array(Value v) const { host().value_set_array(m_, v.raw()); }
  Value put(Value object, std::string_view name) const {
    return Value(host().object_put(m_, object.raw(), name.data(), name.size()));
  }
  bool erase(Value object, std::string_view name) const {
    return host().object_remove(m_, object.raw(), name.data(), name.size()) != 0;
  }
  Value push(Value array) const { return Value(host().array_push(m_, array.raw())); }
  void copy(Value dst, Value src) const { host().value_copy(m_, dst.raw(), src.raw()); }

  void route(uint32_t sink_index) const { host().message_route(m_, sink_index); }
  void clear_routes() const { host().message_clear_routes(m_); }

 private:
  ef_message* m_ = nullptr;
};

class Batch {
 public:
  explicit Batch(ef_batch* b) : b_(b) {}
  ef_batch* raw() const { return b_; }
  size_t size() const { return host().batch_size(b_); }
  Message operator[](size_t i) const { return Message(host().batch_at(b_, i)); }
  void drop(size_t i) const { host().batch_drop(b_, i); }
  void reject(size_t i, std::string_view reason) const {
    host().batch_reject(b_, i, reason.data(), reason.size());
  }
  Message split(size_t i) const { return Message(host().batch_split(b_, i)); }

 private:
  ef_batch* b_;
};

class Context {
 public:
  Context() = default;
  explicit Context(ef_ctx* c) : c_(c) {}
  ef_ctx* raw() const { return c_; }

  void log(ef_log_level level, std::string_view text) const {
    host().log(c_, level, text.data(), text.size());
  }
  void debug(std::string_view t) const { log(EF_LOG_DEBUG, t); }
  void info(std::string_view t) const { log(EF_LOG_INFO, t); }
  void warn(std::string_view t) const { log(EF_LOG_WARN, t); }
  void error(std::string_view t) const { log(EF_LOG_ERROR, t); }
  // "file:line:col" of a config key of this instance, for load-time errors.
  std::string where(const std::string& key_path) const {
    const char* w = host().config_where(c_, key_path.c_str());
    return w ? w : "";
  }
  // The key's full path in the flow file: "steps[1].cell_size" for "cell_size" of the second
  // step. A host older than ABI 1.4 gives the key as it is.
  std::string config_key(const std::string& key_path) const {
    if (EDGEFLOW_HOST_HAS(config_key)) return host().config_key(c_, key_path.c_str());
    return key_path;
  }
  // A semantic config error, formatted like the daemon's own: throw it from the constructor.
  //   throw ctx.config_error("cell_size", "must be a power of two, got 24");
  //   -> flow.yaml:7:16: steps[1].cell_size: must be a power of two, got 24
  Error config_error(const std::string& key_path, std::string_view what) const {
    return Error(where(key_path) + ": " + config_key(key_path) + ": " + std::string(what));
  }
  std::string name() const { return host().instance_name(c_); }
  // Empty when the runtime has no state directory.
  std::string state_dir() const {
    const char* d = host().state_dir(c_);
    return d ? d : "";
  }
  // Metrics the runtime exports for this instance: a gauge's last value, a counter's running total.
  void gauge(std::string_view name, double value) const {
    host().metric_set(c_, name.data(), name.size(), EF_METRIC_GAUGE, value);
  }
  void counter(std::string_view name, double total) const {
    host().metric_set(c_, name.data(), name.size(), EF_METRIC_COUNTER, total);
  }
  size_t sink_count() const { return host().sink_count(c_); }
  std::string_view sink_name(size_t i) const { return host().sink_name(c_, i); }
  int32_t sink_index(std::string_view name) const {
    return host().sink_index(c_, name.data(), name.size());
  }

 private:
  ef_ctx* c_ = nullptr;
};

}  // namespace edgeflow::sdk
