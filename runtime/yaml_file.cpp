#include "yaml_file.hpp"

#include <yaml-cpp/eventhandler.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>

namespace edgeflow {
namespace {

// Stops the scan at the first problem; the mark and message become one diagnostic.
struct Refusal {
  YAML::Mark mark;
  std::string message;
};

// Counts what aliases stand for and the nesting depth, and remembers each map's keys, as the
// parser reports events; throws Refusal past a limit or on a repeated key.
class Guard : public YAML::EventHandler {
 public:
  explicit Guard(const YamlLimits& limits) : limits_(limits) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > limits_.max_documents)
      throw Refusal{mark, "more than " + std::to_string(limits_.max_documents) +
                              " YAML documents in one file; give each flow its own file"};
    anchor_size_.clear();
    stack_.clear();
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { leaf(mark, anchor, nullptr); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, const std::string& value) override {
    leaf(mark, anchor, &value);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // yaml-cpp builds `&a [*a]` as a node that contains itself: every walk over it never ends.
    for (auto& f : stack_)
      if (f.anchor == anchor)
        throw Refusal{mark, "this alias refers to a node that contains it (a cycle); YAML aliases must refer to "
                            "a node defined before them"};
    auto it = anchor_size_.find(anchor);
    uint64_t size = it == anchor_size_.end() ? 1 : it->second;
    alias_nodes_ += size;
    if (alias_nodes_ > limits_.max_alias_nodes)
      throw Refusal{mark, "aliases expand to more than " + std::to_string(limits_.max_alias_nodes) +
                              " nodes in this file (an alias bomb?); write the values out or share fewer, "
                              "smaller blocks"};
    nodes_ += size;
    key_or_value(mark, nullptr);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor, false);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    open(mark, anchor, true);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    YAML::anchor_t anchor;
    uint64_t first_node;
    bool is_map;
    bool expect_key = true;
    std::unordered_map<std::string, YAML::Mark> keys;
  };

  void leaf(const YAML::Mark& mark, YAML::anchor_t anchor, const std::string* value) {
    ++nodes_;
    if (anchor) anchor_size_[anchor] = 1;
    key_or_value(mark, value);
  }

  // In a map, every other child is a key: text (a list, map, alias or nothing as a key is never
  // what a flow means), and unique.
  void key_or_value(const YAML::Mark& mark, const std::string* scalar) {
    if (stack_.empty() || !stack_.back().is_map) return;
    Frame& f = stack_.back();
    if (f.expect_key && !scalar)
      throw Refusal{mark, "a key must be text, not a list, a map, an alias or empty"};
    if (f.expect_key) {
      auto [it, fresh] = f.keys.emplace(*scalar, mark);
      if (!fresh)
        throw Refusal{mark, "duplicate key '" + *scalar + "' (first at line " + std::to_string(it->second.line + 1) +
                                "); a key may appear once in a map: keep one of the two"};
    }
    f.expect_key = !f.expect_key;
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, bool is_map) {
    key_or_value(mark, nullptr);
    if (int(stack_.size()) >= limits_.max_depth)
      throw Refusal{mark, "nested deeper than " + std::to_string(limits_.max_depth) +
                              " levels; a flow needs far fewer, so this is likely a mistake"};
    ++nodes_;
    stack_.push_back(Frame{anchor, nodes_, is_map, true, {}});
  }

  void close() {
    if (stack_.empty()) return;
    Frame& f = stack_.back();
    if (f.anchor) anchor_size_[f.anchor] = nodes_ - f.first_node + 1;
    stack_.pop_back();
  }

  const YamlLimits& limits_;
  std::vector<Frame> stack_;
  std::map<YAML::anchor_t, uint64_t> anchor_size_;
  uint64_t nodes_ = 0;
  uint64_t alias_nodes_ = 0;
  int documents_ = 0;
};

// yaml-cpp's own message for a tab where indentation is expected is cryptic; say what it is.
std::string tab_hint(const std::string& text) {
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++line) {
    size_t end = text.find('\n', i);
    if (end == std::string::npos) end = text.size();
    size_t first = text.find_first_not_of(" \t", i);
    if (first != std::string::npos && first < end && text.find('\t', i) < first)
      return " (line " + std::to_string(line) + " is indented with a tab: YAML indents with spaces only)";
    i = end + 1;
  }
  return "";
}

// YAML allows no control character but tab, LF and CR (YAML 1.2, 5.1), and yaml-cpp 0.7 loops
// forever on some NULs: refuse them before it sees the text.
bool control_characters(const std::string& name, const std::string& text, host::Diagnostics& diag) {
  size_t line = 1, column = 1;
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02X", c);
      diag.errors.push_back(name + ":" + std::to_string(line) + ":" + std::to_string(column) + ": a control character (" +
                            code + ") is not allowed in YAML; is this a flow file?");
      return true;
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return false;
}

}  // namespace

std::vector<YAML::Node> load_yaml_text(const std::string& name, const std::string& text, const YamlLimits& limits,
                                       host::Diagnostics& diag) {
  if (control_characters(name, text, diag)) return {};
  try {
    std::istringstream scan(text);
    YAML::Parser parser(scan);
    Guard guard(limits);
    while (parser.HandleNextDocument(guard)) {
    }
    std::istringstream in(text);
    return YAML::LoadAll(in);
  } catch (const Refusal& r) {
    diag.add(name, r.mark, "", r.message);
  } catch (const YAML::Exception& e) {
    diag.add(name, e.mark, "", "YAML syntax error: " + e.msg + tab_hint(text));
  }
  return {};
}

std::vector<YAML::Node> load_yaml_file(const std::string& file, const YamlLimits& limits, host::Diagnostics& diag) {
  std::string text, error;
  if (!host::read_regular_file(file, limits.max_file_bytes, "raise it with --max-file-size", text, error)) {
    diag.errors.push_back(file + ": " + error);
    return {};
  }
  return load_yaml_text(file, text, limits, diag);
}

}  // namespace edgeflow
