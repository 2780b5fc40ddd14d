#include "yaml_file.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/node/detail/memory.h>
#include <yaml-cpp/node/detail/node.h>

#include <cstdio>
#include <sstream>
#include <unordered_map>

namespace edgeflow {
struct NodeAccess {};
}  // namespace edgeflow

// yaml-cpp builds nodes from parser events with a builder it does not install. Ours (Loader,
// below) does the same from the events it checks, so the text is parsed once, not once for the
// checks and again for the nodes (0.3 s of the 1.9 s a 10 MiB flow took to validate). Node's
// constructor from its internals is private, with as_if as a friend: this specialization, for
// our own tag type, is that door.
template <>
struct YAML::as_if<edgeflow::NodeAccess, edgeflow::NodeAccess> {
  static Node wrap(detail::node& n, const detail::shared_memory_holder& memory) { return Node(n, memory); }
};

namespace edgeflow {
namespace {

// Stops the scan at the first problem; the mark and message become one diagnostic.
struct Refusal {
  YAML::Mark mark;
  std::string message;
};

// Builds one document's nodes from the parser's events while counting what aliases stand for and
// the nesting depth, and remembering each map's keys; throws Refusal past a limit or on a
// repeated key, before anything is expanded.
class Loader : public YAML::EventHandler {
 public:
  Loader(const YamlLimits& limits, uint64_t& alias_nodes) : limits_(limits), alias_nodes_(alias_nodes) {}

  // The document's root; null for an empty document.
  YAML::Node root() const {
    if (!root_) return YAML::Node();
    return YAML::as_if<NodeAccess, NodeAccess>::wrap(*root_, memory_);
  }

  // Where the document began (for a refusal of the whole document).
  const YAML::Mark& start() const { return start_; }

  void OnDocumentStart(const YAML::Mark& mark) override { start_ = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    key_or_value(mark, nullptr);
    YAML::detail::node& n = create(mark, anchor, 1);
    n.set_null();
    attach(n);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YAML::detail::node& n = create(mark, anchor, 1);
    n.set_scalar(value);
    n.set_tag(tag);
    key_or_value(mark, &n.scalar());  // the node's own copy outlives the map's key set
    attach(n);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    // `&a [*a]` would be a node that contains itself: every walk over it would never end.
    for (auto& f : stack_)
      if (f.anchor == anchor)
        throw Refusal{mark, "this alias refers to a node that contains it (a cycle); YAML aliases must refer to "
                            "a node defined before them"};
    if (anchor >= anchors_.size() || !anchors_[anchor].node)
      throw Refusal{mark, "this alias refers to an anchor not defined before it"};
    alias_nodes_ += anchors_[anchor].size;
    if (alias_nodes_ > limits_.max_alias_nodes)
      throw Refusal{mark, "aliases expand to more than " + std::to_string(limits_.max_alias_nodes) +
                              " nodes in this file (an alias bomb?); write the values out or share fewer, "
                              "smaller blocks"};
    nodes_ += anchors_[anchor].size;
    key_or_value(mark, nullptr);
    attach(*anchors_[anchor].node);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value style) override {
    open(mark, tag, anchor, style, YAML::NodeType::Sequence);
  }
  void OnSequenceEnd() override { close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value style) override {
    open(mark, tag, anchor, style, YAML::NodeType::Map);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    YAML::detail::node* node;
    YAML::anchor_t anchor;
    uint64_t first_node;
    bool is_map;
    YAML::detail::node* key = nullptr;  // a map's key waiting for its value
    std::unordered_map<std::string_view, YAML::Mark> keys;
  };
  struct Anchor {
    YAML::detail::node* node = nullptr;
    uint64_t size = 1;  // nodes it stands for
  };

  YAML::detail::node& create(const YAML::Mark& mark, YAML::anchor_t anchor, uint64_t size) {
    ++nodes_;
    YAML::detail::node& n = memory_->create_node();
    n.set_mark(mark);
    if (anchor) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1);
      anchors_[anchor] = {&n, size};
    }
    return n;
  }

  // Adds a finished node to the collection being built, or makes it the root.
  void attach(YAML::detail::node& n) {
    if (stack_.empty()) {
      root_ = &n;
      return;
    }
    Frame& f = stack_.back();
    if (!f.is_map) {
      f.node->push_back(n, memory_);
    } else if (!f.key) {
      f.key = &n;
    } else {
      f.node->insert(*f.key, n, memory_);
      f.key = nullptr;
    }
  }

  // In a map, every other child is a key: text (a list, map, alias or nothing as a key is never
  // what a flow means), and unique.
  void key_or_value(const YAML::Mark& mark, const std::string* scalar) {
    if (stack_.empty() || !stack_.back().is_map || stack_.back().key) return;
    if (!scalar) throw Refusal{mark, "a key must be text, not a list, a map, an alias or empty"};
    auto [it, fresh] = stack_.back().keys.emplace(*scalar, mark);
    if (!fresh)
      throw Refusal{mark, "duplicate key '" + *scalar + "' (first at line " + std::to_string(it->second.line + 1) +
                              "); a key may appear once in a map: keep one of the two"};
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, YAML::EmitterStyle::value style,
            YAML::NodeType::value type) {
    key_or_value(mark, nullptr);
    if (int(stack_.size()) >= limits_.max_depth)
      throw Refusal{mark, "nested deeper than " + std::to_string(limits_.max_depth) +
                              " levels; a flow needs far fewer, so this is likely a mistake"};
    YAML::detail::node& n = create(mark, 0, 1);
    n.set_tag(tag);
    n.set_type(type);
    n.set_style(style);
    stack_.push_back(Frame{&n, anchor, nodes_, type == YAML::NodeType::Map, nullptr, {}});
  }

  // The anchor of a collection is registered when it ends: an alias inside it is a cycle.
  void close() {
    if (stack_.empty()) return;
    YAML::detail::node* n = stack_.back().node;
    YAML::anchor_t anchor = stack_.back().anchor;
    uint64_t size = nodes_ - stack_.back().first_node + 1;
    stack_.pop_back();
    if (anchor) {
      if (anchors_.size() <= anchor) anchors_.resize(anchor + 1);
      anchors_[anchor] = {n, size};
    }
    attach(*n);
  }

  const YamlLimits& limits_;
  uint64_t& alias_nodes_;
  YAML::detail::shared_memory_holder memory_ = std::make_shared<YAML::detail::memory_holder>();
  YAML::detail::node* root_ = nullptr;
  YAML::Mark start_;
  std::vector<Frame> stack_;
  std::vector<Anchor> anchors_;
  uint64_t nodes_ = 0;
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
    std::istringstream in(text);
    YAML::Parser parser(in);
    std::vector<YAML::Node> documents;
    uint64_t alias_nodes = 0;
    for (;;) {
      Loader loader(limits, alias_nodes);
      if (!parser.HandleNextDocument(loader)) break;
      if (int(documents.size()) >= limits.max_documents)
        throw Refusal{loader.start(), "more than " + std::to_string(limits.max_documents) +
                                        " YAML documents in one file; give each flow its own file"};
      documents.push_back(loader.root());
    }
    return documents;
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

bool is_test_file(const std::string& path) {
  std::string_view name(path);
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  auto ends = [&](std::string_view s) { return name.size() > s.size() && name.substr(name.size() - s.size()) == s; };
  return ends(".test.yaml") || ends(".test.yml");
}

}  // namespace edgeflow
