// Live copies of the messages passing a flow's stage, for `edgeflow tap` and the admin API's
// Server-Sent Events. A tap must never slow the flow: the flow thread only ever try-locks the
// hub (a busy hub skips the batch), renders just the messages a subscriber's rate lets through,
// and drops them when the subscriber's queue is full.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace edgeflow {

class TapHub {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxQueued = 256;

  struct Subscription {
    size_t stage = 0;
    double rate = 10;    // events per second, at most
    double tokens = 1;   // token bucket, holds at most max(1, rate)
    Clock::time_point refilled = Clock::now();
    std::deque<std::string> events;
    uint64_t dropped = 0;  // not queued: the queue was full
    bool closed = false;
  };

  std::shared_ptr<Subscription> subscribe(size_t stage, double rate) {
    auto s = std::make_shared<Subscription>();
    s->stage = stage;
    s->rate = rate;
    std::lock_guard lock(mutex_);
    subs_.push_back(s);
    count_.store(int(subs_.size()), std::memory_order_relaxed);
    return s;
  }
  void unsubscribe(const std::shared_ptr<Subscription>& s) {
    std::lock_guard lock(mutex_);
    std::erase(subs_, s);
    count_.store(int(subs_.size()), std::memory_order_relaxed);
  }
  // Ends every subscription: their readers return false from next().
  void close_all() {
    {
      std::lock_guard lock(mutex_);
      for (auto& s : subs_) s->closed = true;
      subs_.clear();
      count_.store(0, std::memory_order_relaxed);
    }
    cv_.notify_all();
  }

  bool active() const { return count_.load(std::memory_order_relaxed) > 0; }

  // Flow thread: offers msgs[0..n) passing `stage`; render(msg) makes one event's text.
  template <class Msg, class Render>
  void offer(size_t stage, Msg* const* msgs, size_t n, Render&& render) {
    std::unique_lock lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock() || n == 0) return;
    bool queued = false;
    auto now = Clock::now();
    for (auto& s : subs_) {
      if (s->stage != stage) continue;
      double cap = s->rate < 1 ? 1 : s->rate;
      s->tokens = std::min(cap, s->tokens + std::chrono::duration<double>(now - s->refilled).count() * s->rate);
      s->refilled = now;
      for (size_t i = 0; i < n && s->tokens >= 1; ++i) {
        s->tokens -= 1;
        if (s->events.size() >= kMaxQueued) {
          ++s->dropped;
          continue;
        }
        s->events.push_back(render(msgs[i]));
        queued = true;
      }
    }
    lock.unlock();
    if (queued) cv_.notify_all();
  }

  // Reader: waits up to `timeout` for events and moves them to `out`; false once closed.
  bool next(Subscription& s, std::vector<std::string>& out, uint64_t& dropped, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return s.closed || !s.events.empty(); });
    out.assign(std::make_move_iterator(s.events.begin()), std::make_move_iterator(s.events.end()));
    s.events.clear();
    dropped = s.dropped;
    return !s.closed;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<Subscription>> subs_;
  std::atomic<int> count_{0};
};

}  // namespace edgeflow
