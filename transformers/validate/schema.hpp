// JSON Schema draft-07 and draft-04, whole: compiled once from the schema's JSON into a graph of
// checks, then applied to documents read exactly (json_doc.hpp). `$ref` resolves within the
// schema (JSON pointers, `$id` scopes, plain-name anchors) and to the schema files of one
// directory, found by path or by their `$id`; never over a network. Patterns are ECMA-262 as
// PCRE2 reads them, with a match limit, so no payload string can make a check run for long.
#pragma once

#include "decimal.hpp"
#include "json_doc.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgeflow_validate {

enum class Draft { draft4, draft7 };

// A schema that cannot be used: `document` is the file (or "" for the schema given inline),
// `pointer` the place in it (RFC 6901, "" for its root).
struct SchemaError : std::runtime_error {
  SchemaError(std::string document, std::string pointer, const std::string& why)
      : std::runtime_error(why), document(std::move(document)), pointer(std::move(pointer)) {}
  std::string document, pointer;
};

// One reason a document does not match: where in it (a JSON pointer) and what is wrong.
struct Failure {
  std::string pointer;
  std::string message;
};

class Regex;

class Schema {
 public:
  struct Options {
    std::string schema_dir;  // where `$ref` may find other schema files ("": nowhere)
    bool format_assertion = false;
    uint64_t max_file_bytes = 16u << 20;
    size_t max_files = 1000;
  };

  // `root` is the schema; `file` its path, or "" when it was given inline (then relative `$ref`s
  // resolve in schema_dir). Throws SchemaError.
  Schema(const Doc& root, const std::string& file, const Options& options);
  ~Schema();
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  Draft draft() const { return draft_; }
  // Keywords the schema uses that its draft does not define (typos, extensions).
  struct Unknown {
    std::string keyword, place, suggestion;  // suggestion: the keyword meant, or ""
  };
  const std::vector<Unknown>& unknown_keywords() const { return unknown_; }

  // True when `doc` matches. Otherwise `failures` holds up to `max_failures` reasons, each at
  // its place in the document.
  bool validate(const Doc& doc, std::vector<Failure>& failures, size_t max_failures);

 private:
  struct Node;
  struct Location {
    const Doc* doc;
    uint32_t value;
    bool operator<(const Location& o) const { return doc != o.doc ? doc < o.doc : value < o.value; }
  };
  struct Ctx;

  void index_resources(const Doc& doc, const std::string& base, const std::string& file);
  void index(const Doc& doc, uint32_t v, const std::string& base, const std::string& file, const std::string& pointer,
             int depth);
  uint32_t compile(Location at, const std::string& pointer);
  void keywords(Node& n, Location at, const std::string& pointer);
  uint32_t child(Location parent, const JsonValue& v, const std::string& pointer);
  uint32_t resolve(const std::string& ref, Location at, const std::string& pointer);
  const Doc* load_file(const std::string& uri);
  Regex* regex(const std::string& pattern, Location at, const std::string& pointer);
  [[noreturn]] void fail(Location at, const std::string& pointer, const std::string& why) const;
  void check_cycles() const;

  bool eval(uint32_t node, uint32_t value, Ctx* c);
  bool check(const Node& n, uint32_t value, Ctx* c);

  Options options_;
  Draft draft_ = Draft::draft7;
  const Doc* root_doc_;
  std::vector<std::unique_ptr<Doc>> files_;            // schema files loaded for `$ref`
  std::map<const Doc*, std::string> file_of_;          // for messages
  std::map<const Doc*, Draft> draft_of_;               // each file's own $schema, else the root's
  bool draft7(const Doc* d) const { return draft_of_.at(d) == Draft::draft7; }
  std::map<std::string, Location> resources_;          // URI without fragment → schema
  std::map<std::string, Location> anchors_;            // URI with plain-name fragment → schema
  std::map<Location, std::string> base_of_;            // each schema position's base URI
  std::map<Location, uint32_t> compiled_;
  std::vector<Node> nodes_;
  std::vector<std::unique_ptr<Regex>> regexes_;
  std::map<std::string, Regex*> regex_by_pattern_;
  std::vector<Unknown> unknown_;
  const Doc* instance_ = nullptr;
  Doc name_doc_;  // a property name, as a document of its own for propertyNames
  uint32_t root_ = 0;
};

}  // namespace edgeflow_validate
