// redact: privacy rules applied at the edge, so personal data is masked, pseudonymised, cut or
// removed before it leaves the site. Each rule names document paths (with wildcards over array
// elements and object members) and one action; a path that matches nothing is not an error,
// since optional fields are the common case.
//
// hash is a keyed HMAC-SHA256: the same value gives the same pseudonym in every message, so the
// data stays joinable, but without the key nobody can hash a list of candidate emails or
// phone numbers and look the pseudonyms up. That is why hashing without a key is refused.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace edgeflow::sdk;

namespace {

// Shorter HMAC keys are guessable; 16 bytes is the floor of NIST SP 800-107's 128-bit strength.
constexpr size_t kMinKeyBytes = 16;

bool continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += !continuation(c);
  return n;
}

// Bytes of the first n code points: a cut never splits a multi-byte character.
size_t prefix_bytes(std::string_view s, size_t n) {
  size_t at = 0;
  for (size_t k = 0; k < n && at < s.size(); ++k) {
    ++at;
    while (at < s.size() && continuation(s[at])) ++at;
  }
  return at;
}

// Byte offset where the last n code points begin.
size_t suffix_start(std::string_view s, size_t n) {
  size_t at = s.size();
  for (size_t k = 0; k < n && at > 0;) {
    --at;
    if (!continuation(s[at])) ++k;
  }
  return at;
}

struct Seg {
  enum class Kind { member, index, each_member, each_element } kind = Kind::member;
  std::string name;
  size_t index = 0;
};

struct Rule {
  enum class Action { mask, hash, drop, truncate } action = Action::mask;
  std::string path_text;
  std::vector<Seg> path;
  std::string mask_with = "***";
  size_t keep_last = 0;
  size_t length = 0;
};

class Redact : public Transformer {
 public:
  struct Config {
    Json rules;
    std::string key;
  };
  static constexpr const char* type = "redact";
  static constexpr const char* description =
      "Masks, pseudonymises (keyed hash), truncates or removes fields named by document paths, "
      "with wildcards over arrays and objects.";
  static void describe(Spec<Config>& s) {
    s.option("rules", &Config::rules)
        .required()
        .doc("Ordered list of { path, action: mask|hash|drop|truncate } with, for mask, optional mask_with "
             "(default \"***\") and keep_last (characters kept at the end), and for truncate, length. "
             "In a path, [*] is every array element and a * segment every member of an object.")
        .example("[{ path: customer.email, action: hash }, { path: payments[*].card, action: mask, keep_last: 4 }]");
    s.option("key", &Config::key)
        .secret()
        .doc("HMAC-SHA256 key for action: hash, at least 16 bytes; required when a rule hashes. Changing it "
             "changes every pseudonym.")
        .example("${env:REDACT_KEY}");
  }

  Redact(Context c, Config cfg) : Transformer(c), key_(std::move(cfg.key)) {
    auto* list = cfg.rules.array();
    if (!list || list->empty())
      throw Error(c.where("rules") + ": rules: expected a list of rules like { path: customer.email, action: mask }");
    for (size_t i = 0; i < list->size(); ++i) rules_.push_back(rule((*list)[i], "rules[" + std::to_string(i) + "]"));
    if (!key_.empty() && key_.size() < kMinKeyBytes)
      throw Error(c.where("key") + ": key: too short (" + std::to_string(key_.size()) + " bytes) to resist guessing; use at "
                  "least " + std::to_string(kMinKeyBytes) + " random bytes, e.g. the output of `openssl rand -hex 32`");
  }

  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      Value root(host().message_doc(m.raw()));
      if (!root) {
        b.reject(i, "redact: " + message_doc_error(m.raw()));
        continue;
      }
      for (auto& r : rules_) visit(m, r, root, 0);
    }
  }

 private:
  Rule rule(const Json& j, const std::string& k) {
    const Context& c = context();
    auto* o = j.object();
    if (!o) throw Error(c.where(k) + ": " + k + ": expected a map like { path: customer.email, action: mask }");
    Rule r;
    const Json* path = nullptr;
    const Json* action = nullptr;
    const Json* mask_with = nullptr;
    const Json* keep_last = nullptr;
    const Json* length = nullptr;
    for (auto& [name, v] : *o) {
      if (name == "path") path = &v;
      else if (name == "action") action = &v;
      else if (name == "mask_with") mask_with = &v;
      else if (name == "keep_last") keep_last = &v;
      else if (name == "length") length = &v;
      else
        throw Error(c.where(k + "." + name) + ": " + k + "." + name +
                    ": unknown field; a rule has path, action, mask_with, keep_last and length");
    }
    if (!path) throw Error(c.where(k) + ": " + k + ": missing `path:`, the field to redact, like customer.email");
    if (!path->string()) throw Error(c.where(k + ".path") + ": " + k + ".path: expected a document path, like customer.email");
    r.path_text = *path->string();
    r.path = parse_path(r.path_text, k + ".path");

    if (!action) throw Error(c.where(k) + ": " + k + ": missing `action:`, one of mask, hash, drop, truncate");
    std::string a = action->string() ? *action->string() : "";
    if (a == "mask") r.action = Rule::Action::mask;
    else if (a == "hash") r.action = Rule::Action::hash;
    else if (a == "drop") r.action = Rule::Action::drop;
    else if (a == "truncate") r.action = Rule::Action::truncate;
    else
      throw Error(c.where(k + ".action") + ": " + k + ".action: " + (a.empty() ? "expected" : "'" + a + "' is not") +
                  " one of: mask, hash, drop, truncate");

    auto only_for = [&](const Json* v, const char* field, Rule::Action act, const char* act_name) {
      if (v && r.action != act)
        throw Error(c.where(k + "." + field) + ": " + k + "." + field + ": only used with action: " + act_name +
                    "; remove it or change the action");
    };
    only_for(mask_with, "mask_with", Rule::Action::mask, "mask");
    only_for(keep_last, "keep_last", Rule::Action::mask, "mask");
    only_for(length, "length", Rule::Action::truncate, "truncate");
    if (mask_with) {
      if (!mask_with->string())
        throw Error(c.where(k + ".mask_with") + ": " + k + ".mask_with: expected a string; quote it, like mask_with: \"0000\"");
      r.mask_with = *mask_with->string();
    }
    if (keep_last) r.keep_last = count(*keep_last, k + ".keep_last", 0);
    if (r.action == Rule::Action::truncate) {
      if (!length) throw Error(c.where(k) + ": " + k + ": action truncate needs `length:`, the characters to keep");
      r.length = count(*length, k + ".length", 1);
    }
    if (r.action == Rule::Action::hash && key_.empty())
      throw Error(c.where(k + ".action") + ": " + k + ".action: hash needs the `key` option (an HMAC key): a plain "
                  "hash of an email or phone number is undone by hashing every candidate; add `key: ${env:REDACT_KEY}`");
    return r;
  }

  size_t count(const Json& v, const std::string& k, int64_t min) {
    auto* n = std::get_if<int64_t>(&v.v);
    if (!n || *n < min)
      throw Error(context().where(k) + ": " + k + ": expected a whole number of characters, at least " +
                  std::to_string(min));
    return size_t(*n);
  }

  // "a.b[0].c", "items[*].card", "customers.*.email": member names, indexes, and the two wildcards.
  std::vector<Seg> parse_path(const std::string& p, const std::string& k) {
    auto fail = [&](const std::string& what) -> std::vector<Seg> {
      throw Error(context().where(k) + ": " + k + ": '" + p + "': " + what +
                  "; write paths like customer.email, items[*].card or customers.*.email");
    };
    if (p.empty()) return fail("empty path");
    std::vector<Seg> out;
    size_t i = 0;
    while (i < p.size()) {
      Seg s;
      if (p[i] == '[') {
        size_t close = p.find(']', i);
        if (close == std::string::npos) return fail("'[' without ']'");
        std::string_view inner(p.data() + i + 1, close - i - 1);
        if (inner == "*") {
          s.kind = Seg::Kind::each_element;
        } else {
          if (inner.empty() || inner.find_first_not_of("0123456789") != std::string_view::npos || inner.size() > 9)
          {
            // Built step by step: gcc 12 warns (-Wrestrict, a false positive) on "[" + string.
            std::string what = "[";
            what.append(inner).append("] is not an array index; use [0] or [*]");
            return fail(what);
          }
          s.kind = Seg::Kind::index;
          s.index = std::stoul(std::string(inner));
        }
        i = close + 1;
      } else {
        size_t end = p.find_first_of(".[]", i);
        if (end == std::string::npos) end = p.size();
        s.name = p.substr(i, end - i);
        if (s.name.empty()) return fail("empty field name");
        if (end < p.size() && p[end] == ']') return fail("']' without '['");
        if (s.name == "*") s.kind = Seg::Kind::each_member;
        else if (s.name.find('*') != std::string::npos)
          return fail("'*' stands for a whole segment (every member), not part of a name");
        i = end;
      }
      out.push_back(std::move(s));
      if (i < p.size() && p[i] == '.') {
        if (++i == p.size()) return fail("ends with '.'");
        if (p[i] == '[' || p[i] == '.') return fail("empty field name");
      } else if (i < p.size() && p[i] != '[') {
        return fail("expected '.' or '[' after ']'");
      }
    }
    return out;
  }

  // Applies rule r at segment k of its path below cur. Edits change values in place or remove
  // members of the container being walked; nothing above it moves, so cur stays valid.
  void visit(Message m, const Rule& r, Value cur, size_t k) {
    const Seg& s = r.path[k];
    bool last = k + 1 == r.path.size();
    bool drop = last && r.action == Rule::Action::drop;
    switch (s.kind) {
      case Seg::Kind::member: {
        Value child = cur.is_object() ? cur[s.name] : Value();
        if (!child) return;
        if (drop) m.erase(cur, s.name);
        else if (last) act(m, r, child);
        else visit(m, r, child, k + 1);
        return;
      }
      case Seg::Kind::each_member: {
        if (!cur.is_object() || cur.size() == 0) return;
        if (drop) return m.make_object(cur);
        for (size_t j = 0; j < cur.size(); ++j) {
          Value child = cur.member(j).second;
          if (last) act(m, r, child);
          else visit(m, r, child, k + 1);
        }
        return;
      }
      case Seg::Kind::index: {
        if (!cur.is_array() || s.index >= cur.size()) return;
        if (drop) return remove_element(m, cur, s.index);
        if (last) act(m, r, cur.at(s.index));
        else visit(m, r, cur.at(s.index), k + 1);
        return;
      }
      case Seg::Kind::each_element: {
        if (!cur.is_array() || cur.size() == 0) return;
        if (drop) return m.make_array(cur);
        for (size_t j = 0; j < cur.size(); ++j) {
          if (last) act(m, r, cur.at(j));
          else visit(m, r, cur.at(j), k + 1);
        }
        return;
      }
    }
  }

  // The host has no call to erase one array element in place: rebuild the array without it.
  static void remove_element(Message m, Value array, size_t index) {
    std::vector<expr::Val> rest;
    for (size_t j = 0; j < array.size(); ++j)
      if (j != index) rest.push_back(expr::Val::from(array.at(j)).materialize());
    m.make_array(array);
    for (auto& v : rest) expr::assign(m, m.push(array), v);
  }

  // New values are built in a std::string first: setting a value from a view of itself is unsafe.
  void act(Message m, const Rule& r, Value v) const {
    // A null has nothing to hide, and turning it into "***" would claim a value was there.
    if (v.is_null()) return;
    switch (r.action) {
      case Rule::Action::mask: {
        std::string out = r.mask_with;
        if (v.is_string() && r.keep_last > 0) {
          std::string_view s = v.as_string();
          // Keeping the last 4 of a 4-character value would keep all of it.
          if (code_points(s) > r.keep_last) out += s.substr(suffix_start(s, r.keep_last));
        }
        m.set(v, std::string_view(out));
        return;
      }
      case Rule::Action::hash: {
        std::string out = expr::builtin::hmac_sha256_hex(key_, expr::to_text(expr::Val::from(v)));
        m.set(v, std::string_view(out));
        return;
      }
      case Rule::Action::truncate: {
        if (!v.is_string()) return;
        std::string_view s = v.as_string();
        size_t cut = prefix_bytes(s, r.length);
        if (cut == s.size()) return;
        std::string out(s.substr(0, cut));
        m.set(v, std::string_view(out));
        return;
      }
      case Rule::Action::drop: return;  // handled by the container in visit()
    }
  }

  std::string key_;
  std::vector<Rule> rules_;
};

}  // namespace

EDGEFLOW_PLUGIN("redact", "0.1.0", Redact)
