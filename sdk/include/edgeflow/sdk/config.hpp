// Config spec declared once, bound to members of the plugin's config struct. The same
// declaration produces the ef_option_spec table the host validates YAML against, documents
// and redacts with, and fills the struct in create().
#pragma once

#include <edgeflow/sdk/host.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace edgeflow::sdk {

// A byte count; YAML accepts 1048576, "1MiB", "64KB".
struct Bytes {
  uint64_t value = 0;
};

// An owned copy of any YAML value (EF_OPT_ANY): maps keep their order.
struct Json {
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v = nullptr;

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
  const Object* object() const { return std::get_if<Object>(&v); }
  const Array* array() const { return std::get_if<Array>(&v); }
  const std::string* string() const { return std::get_if<std::string>(&v); }

  static Json from(Value src) {
    Json j;
    switch (src.type()) {
      case EF_TYPE_NULL: break;
      case EF_TYPE_BOOL: j.v = src.as_bool(); break;
      case EF_TYPE_INT: j.v = src.as_int(); break;
      case EF_TYPE_DOUBLE: j.v = src.as_double(); break;
      case EF_TYPE_STRING: j.v = std::string(src.as_string()); break;
      case EF_TYPE_ARRAY: {
        Array a;
        for (size_t i = 0; i < src.size(); ++i) a.push_back(from(src.at(i)));
        j.v = std::move(a);
        break;
      }
      case EF_TYPE_OBJECT: {
        Object o;
        for (size_t i = 0; i < src.size(); ++i) {
          auto [name, val] = src.member(i);
          o.emplace_back(std::string(name), from(val));
        }
        j.v = std::move(o);
        break;
      }
    }
    return j;
  }
};

template <class T>
struct OptionTypeOf;
template <> struct OptionTypeOf<std::string> { static constexpr ef_option_type value = EF_OPT_STRING; };
template <> struct OptionTypeOf<bool> { static constexpr ef_option_type value = EF_OPT_BOOL; };
template <> struct OptionTypeOf<double> { static constexpr ef_option_type value = EF_OPT_DOUBLE; };
template <> struct OptionTypeOf<std::chrono::milliseconds> { static constexpr ef_option_type value = EF_OPT_DURATION; };
template <> struct OptionTypeOf<Bytes> { static constexpr ef_option_type value = EF_OPT_SIZE; };
template <> struct OptionTypeOf<std::vector<std::string>> { static constexpr ef_option_type value = EF_OPT_STRING_LIST; };
template <> struct OptionTypeOf<Json> { static constexpr ef_option_type value = EF_OPT_ANY; };
template <class T>
  requires std::is_integral_v<T> && (!std::is_same_v<T, bool>)
struct OptionTypeOf<T> { static constexpr ef_option_type value = EF_OPT_INT; };

namespace detail {

template <class T>
void assign(T& out, Value v) {
  if constexpr (std::is_same_v<T, std::string>) out = std::string(v.as_string());
  else if constexpr (std::is_same_v<T, bool>) out = v.as_bool();
  else if constexpr (std::is_same_v<T, double>) out = v.as_double();
  else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) out = std::chrono::milliseconds(v.as_int());
  else if constexpr (std::is_same_v<T, Bytes>) out.value = uint64_t(v.as_int());
  else if constexpr (std::is_same_v<T, Json>) out = Json::from(v);
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    out.clear();
    for (size_t i = 0; i < v.size(); ++i) out.emplace_back(v.at(i).as_string());
  } else out = static_cast<T>(v.as_int());
}

// YAML text of a default member value, for the spec table.
template <class T>
std::string default_text(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    std::string q = "\"";
    for (char c : value) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    return q + "\"";
  } else if constexpr (std::is_same_v<T, bool>) return value ? "true" : "false";
  else if constexpr (std::is_same_v<T, double>) {
    std::string s = std::to_string(value);
    while (s.size() > 1 && s.back() == '0' && s[s.size() - 2] != '.') s.pop_back();
    return s;
  } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
    auto ms = value.count();
    if (ms % 3600000 == 0 && ms) return std::to_string(ms / 3600000) + "h";
    if (ms % 60000 == 0 && ms) return std::to_string(ms / 60000) + "m";
    if (ms % 1000 == 0 && ms) return std::to_string(ms / 1000) + "s";
    return std::to_string(ms) + "ms";
  } else if constexpr (std::is_same_v<T, Bytes>) {
    auto b = value.value;
    if (b % (1u << 30) == 0 && b) return std::to_string(b >> 30) + "GiB";
    if (b % (1u << 20) == 0 && b) return std::to_string(b >> 20) + "MiB";
    if (b % 1024 == 0 && b) return std::to_string(b >> 10) + "KiB";
    return std::to_string(b);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::string s = "[";
    for (size_t i = 0; i < value.size(); ++i) s += (i ? ", " : "") + default_text(value[i]);
    return s + "]";
  } else if constexpr (std::is_same_v<T, Json>) return "";
  else return std::to_string(value);
}

}  // namespace detail

// The declaration of one option; chain the modifiers.
template <class Cfg>
class Option {
 public:
  Option(std::vector<ef_option_spec>& specs, size_t index, std::deque<std::string>& strings)
      : specs_(specs), index_(index), strings_(strings) {}
  Option& required() { s().flags |= EF_OPT_REQUIRED; s().default_value = nullptr; return *this; }
  Option& secret() { s().flags |= EF_OPT_SECRET; return *this; }
  Option& min(double m) { s().flags |= EF_OPT_HAS_MIN; s().min = m; return *this; }
  Option& max(double m) { s().flags |= EF_OPT_HAS_MAX; s().max = m; return *this; }
  Option& range(double lo, double hi) { return min(lo).max(hi); }
  // Exclusive bounds: greater_than(0) refuses 0 itself. A host older than ABI 1.4 checks them
  // as min()/max().
  Option& greater_than(double m) { min(m); s().flags |= EF_OPT_MIN_EXCLUSIVE; return *this; }
  Option& less_than(double m) { max(m); s().flags |= EF_OPT_MAX_EXCLUSIVE; return *this; }
  // Turns a string option into an enum: "a|b|c".
  Option& one_of(const char* values) { s().type = EF_OPT_ENUM; s().enum_values = values; return *this; }
  Option& doc(const char* d) { s().doc = d; return *this; }
  Option& example(const char* e) { s().example = e; return *this; }
  // Overrides the default taken from the struct's initialiser (YAML text; "" for none).
  Option& default_value(std::string yaml) {
    s().default_value = yaml.empty() ? nullptr : strings_.emplace_back(std::move(yaml)).c_str();
    return *this;
  }

 private:
  // By index: the table may grow while this option is being declared.
  ef_option_spec& s() { return specs_[index_]; }
  std::vector<ef_option_spec>& specs_;
  size_t index_;
  std::deque<std::string>& strings_;
};

// The option table of one component, built once from its describe() function.
template <class Cfg>
class Spec {
 public:
  template <class T>
  Option<Cfg> option(const char* name, T Cfg::*member) {
    Cfg defaults{};
    ef_option_spec s{};
    s.struct_size = sizeof(ef_option_spec);
    s.name = name;
    s.type = OptionTypeOf<T>::value;
    std::string d = detail::default_text(defaults.*member);
    s.default_value = d.empty() ? nullptr : strings_.emplace_back(std::move(d)).c_str();
    s.doc = "";
    specs_.push_back(s);
    binders_.push_back([member](Cfg& c, Value v) { detail::assign(c.*member, v); });
    return Option<Cfg>(specs_, specs_.size() - 1, strings_);
  }

  const ef_option_spec* data() const { return specs_.data(); }
  uint32_t size() const { return uint32_t(specs_.size()); }

  // Fills cfg from the host-checked config object (absent keys keep their initialiser).
  void bind(Cfg& cfg, Value config) const {
    for (size_t i = 0; i < specs_.size(); ++i) {
      Value v = config[specs_[i].name];
      if (v && !v.is_null()) binders_[i](cfg, v);
    }
  }

 private:
  std::vector<ef_option_spec> specs_;
  std::deque<std::string> strings_;  // stable storage for generated default texts
  std::vector<std::function<void(Cfg&, Value)>> binders_;
};

}  // namespace edgeflow::sdk
