// uppercase_field: upper-cases one string field of each message's JSON document.
//
//   steps:
//     - type: uppercase_field
//       field: customer.name        # a document path; a[2].b reaches into arrays
//       on_missing: keep            # keep | drop | reject
//
// A message whose field holds anything but a string is rejected to the flow's dead letter:
// guessing a text form for a number or an object would hide a producer's bug downstream.
#include <edgeflow/sdk/plugin.hpp>

#include <string>

using namespace edgeflow::sdk;

namespace {

const char* type_name(ef_type t) {
  switch (t) {
    case EF_TYPE_NULL: return "null";
    case EF_TYPE_BOOL: return "a boolean";
    case EF_TYPE_INT:
    case EF_TYPE_DOUBLE: return "a number";
    case EF_TYPE_STRING: return "a string";
    case EF_TYPE_ARRAY: return "an array";
    case EF_TYPE_OBJECT: return "an object";
  }
  return "an unknown type";
}

class UppercaseField : public Transformer {
 public:
  struct Config {
    std::string field;
    std::string on_missing = "keep";
  };
  static constexpr const char* type = "uppercase_field";
  static constexpr const char* description =
      "Upper-cases a string field of each message's JSON document (ASCII letters; other "
      "characters are kept as they are).";
  static void describe(Spec<Config>& s) {
    s.option("field", &Config::field)
        .required()
        .doc("Document path of the string to upper-case.")
        .example("customer.name");
    s.option("on_missing", &Config::on_missing)
        .one_of("keep|drop|reject")
        .doc("What to do with a message whose field is absent or null: pass it on unchanged, "
             "drop it (it counts as delivered), or send it to the dead letter.")
        .example("reject");
  }

  // Only parses: `edgeflow validate` constructs every step, so errors here point into the YAML.
  UppercaseField(Context c, Config cfg) : Transformer(c), field_(std::move(cfg.field)) {
    if (field_.empty() || field_.front() == '.' || field_.back() == '.' ||
        field_.find("..") != std::string::npos)
      throw c.config_error("field", "'" + field_ + "' is not a document path; write it like customer.name or items[0].sku");
    on_missing_ = cfg.on_missing == "drop" ? Missing::drop
                : cfg.on_missing == "reject" ? Missing::reject
                                             : Missing::keep;
  }

  void transform(Batch batch) override {
    // drop() and reject() only mark a message, so indexes stay valid for the whole loop.
    for (size_t i = 0; i < batch.size(); ++i) {
      Message m = batch[i];
      try {
        m.doc();  // get() alone would report a payload that is not JSON as a missing field
      } catch (const Error& e) {
        // One bad payload is that message's problem, not a reason to fail the batch.
        batch.reject(i, e.what());
        continue;
      }
      Value v = m.get(field_);
      // JSON producers commonly write null for "no value", so null counts as missing.
      if (v.is_null()) {
        if (on_missing_ == Missing::drop) batch.drop(i);
        else if (on_missing_ == Missing::reject) batch.reject(i, field_ + " is missing");
        continue;
      }
      if (!v.is_string()) {
        batch.reject(i, field_ + " is " + type_name(v.type()) + ", not a string");
        continue;
      }
      // The view points into the document, which the set() below rewrites: copy first.
      std::string text(v.as_string());
      bool changed = false;
      for (char& ch : text) {
        // Byte-wise ASCII only: locale-free, and UTF-8 sequences (all bytes >= 0x80) survive.
        if (ch >= 'a' && ch <= 'z') {
          ch = char(ch - 'a' + 'A');
          changed = true;
        }
      }
      // Untouched documents are not serialised again, so their payload bytes pass unchanged.
      if (changed) m.set(v, std::string_view(text));
    }
  }

 private:
  enum class Missing { keep, drop, reject };
  std::string field_;
  Missing on_missing_ = Missing::keep;
};

}  // namespace

EDGEFLOW_PLUGIN("example-plugins", "0.1.0", UppercaseField)
