// The repair station's sink: dead letters into the letter store (letter_store.hpp), where
// `edgeflow dlq` and the admin API find, replay and purge them. The runtime's default dead letter.
#include "letter_store.hpp"

#include <edgeflow/sdk/plugin.hpp>

#include <memory>

namespace {

using namespace edgeflow::sdk;
namespace dlq = edgeflow::dlq;

class DlqStore : public Sink {
 public:
  struct Config {
    std::string path;
  };
  static constexpr const char* type = "dlq_store";
  static constexpr const char* description =
      "Keeps dead letters in a queryable store (SQLite) with everything needed to replay them: "
      "`edgeflow dlq list|show|replay|purge`. Each record must be a dead-letter envelope.";
  static void describe(Spec<Config>& s) {
    s.option("path", &Config::path)
        .required()
        .doc("The store file; the runtime's default dead letter uses STATE_DIR/dead_letters.sqlite, which "
             "`edgeflow dlq` reads.")
        .example("/var/lib/edgeflow/dead_letters.sqlite");
  }
  DlqStore(Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {}

  void start() override {
    try {
      store_ = std::make_unique<dlq::LetterStore>(cfg_.path);
    } catch (const dlq::StoreError& e) {
      throw Error(e.what());
    }
  }

  void write(Batch b) override {
    letters_.clear();
    refused_.assign(b.size(), std::string());
    std::string error;
    for (size_t i = 0; i < b.size(); ++i) {
      dlq::Letter l;
      if (dlq::from_envelope(b[i].payload(), l, error)) letters_.push_back(std::move(l));
      else refused_[i] = "dlq_store: " + error;
    }
    try {
      store_->add(letters_);
    } catch (const dlq::StoreError& e) {
      return ack_all(b, EF_ACK_RETRY, e.what());
    }
    for (size_t i = 0; i < b.size(); ++i) {
      if (refused_[i].empty()) ack(b[i], EF_ACK_DELIVERED);
      else ack(b[i], EF_ACK_REJECTED, refused_[i]);
    }
  }

 private:
  Config cfg_;
  std::unique_ptr<dlq::LetterStore> store_;
  std::vector<dlq::Letter> letters_;
  std::vector<std::string> refused_;
};

}  // namespace

EDGEFLOW_PLUGIN("dlq_store", "0.1.0", DlqStore)
