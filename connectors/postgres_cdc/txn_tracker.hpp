// Which LSN the slot may be told is flushed. A transaction's events share one ack token (its
// sequence number); the transaction counts as done once its commit was seen and every event it
// emitted was resolved. The confirmed LSN is the commit end LSN of the last transaction of the
// contiguous done prefix: a restart then re-reads exactly the transactions not fully delivered.
// Many rows sharing one LSN (multi-row INSERT, COPY) are therefore never split by a confirmation.
#pragma once

#include "pgoutput.hpp"

#include <edgeflow/abi.h>

#include <cstdint>
#include <deque>
#include <stdexcept>

namespace edgeflow::pg {

class TxnTracker {
 public:
  // A transaction (or a snapshot, or a non-transactional message) starts; returns its token.
  uint64_t open() {
    window_.push_back(Txn{});
    return base_ + window_.size() - 1;
  }
  // One more event of transaction `token` was emitted.
  void add(uint64_t token, uint64_t events = 1) { at(token).pending += events; }
  // Its last event was read; `end` is what to confirm once all its events are resolved.
  void commit(uint64_t token, Lsn end) {
    Txn& t = at(token);
    t.end = end;
    t.committed = true;
    advance();
  }
  // A retry leaves the event open: nothing after it is confirmed in this run.
  void resolve(uint64_t token, ef_ack_status status) {
    if (status == EF_ACK_RETRY) return;
    Txn& t = at(token);
    if (t.pending == 0) throw std::logic_error("more acks than events for a transaction");
    --t.pending;
    advance();
  }
  // Nothing read is unresolved: the server's position may be confirmed as a whole.
  bool idle() const { return window_.empty(); }
  // Raises the confirmed LSN when idle (a keepalive's end of WAL).
  void caught_up(Lsn server_end) {
    if (idle() && server_end > confirmed_) confirmed_ = server_end;
  }
  Lsn confirmed() const { return confirmed_; }
  void start_at(Lsn lsn) { confirmed_ = lsn; }
  // Tokens at or below this are done (for the snapshot's completion).
  bool done(uint64_t token) const { return token < base_; }
  size_t open_transactions() const { return window_.size(); }

 private:
  struct Txn {
    Lsn end = 0;
    uint64_t pending = 0;
    bool committed = false;
  };
  Txn& at(uint64_t token) {
    if (token < base_ || token - base_ >= window_.size()) throw std::out_of_range("unknown transaction token");
    return window_[token - base_];
  }
  void advance() {
    while (!window_.empty() && window_.front().committed && window_.front().pending == 0) {
      if (window_.front().end > confirmed_) confirmed_ = window_.front().end;
      window_.pop_front();
      ++base_;
    }
  }
  std::deque<Txn> window_;
  uint64_t base_ = 0;
  Lsn confirmed_ = 0;
};

}  // namespace edgeflow::pg
