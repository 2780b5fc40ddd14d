// Contiguous-prefix commit: acks arrive in any order, a source may only commit the positions
// below the first message still unresolved. Sequence numbers are handed out in read order and
// used as ack tokens; each carries the source position to commit once it and all before it
// are resolved.
#pragma once

#include <edgeflow/abi.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>

namespace edgeflow::sdk {

template <class Position>
class CommitTracker {
 public:
  // Registers the next message read; returns its token. `position` is what to commit once
  // this message and every earlier one are resolved (e.g. the byte offset after it).
  uint64_t track(Position position) {
    window_.push_back(Slot{position, false});
    return next_++;
  }

  // Delivered and rejected (dead-lettered) both resolve a message. A retry leaves it open:
  // the source must not commit past it and will read it again after a restart.
  void resolve(uint64_t token, ef_ack_status status) {
    if (token < base_ || token >= next_) throw std::out_of_range("unknown ack token");
    if (status == EF_ACK_RETRY) {
      stalled_ = true;
      return;
    }
    window_[token - base_].done = true;
    while (!window_.empty() && window_.front().done) {
      committable_ = window_.front().position;
      window_.pop_front();
      ++base_;
    }
  }

  // The position to commit now, if it moved since the last take.
  std::optional<Position> take() {
    if (!committable_) return std::nullopt;
    auto p = committable_;
    committable_.reset();
    return p;
  }

  size_t pending() const { return window_.size(); }
  // A retry was reported: nothing after the open message can be committed in this run.
  bool stalled() const { return stalled_; }

 private:
  struct Slot {
    Position position;
    bool done;
  };
  std::deque<Slot> window_;
  uint64_t base_ = 0;
  uint64_t next_ = 0;
  std::optional<Position> committable_;
  bool stalled_ = false;
};

}  // namespace edgeflow::sdk
