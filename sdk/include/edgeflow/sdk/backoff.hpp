// Capped exponential backoff with full jitter: the wait before attempt n (1-based) is drawn
// uniformly from [lowest, min(max, initial * 2^(n-1))], so peers that failed together spread out
// instead of retrying in step. Used by the runtime (retries, restarts) and by connectors that
// reconnect or retry on their own.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace edgeflow::sdk {

template <class Rng>
std::chrono::milliseconds full_jitter(std::chrono::milliseconds initial, std::chrono::milliseconds max, uint64_t attempt,
                                      Rng& rng, int64_t lowest = 0) {
  int64_t cap = initial.count();
  for (uint64_t i = 1; i < attempt && cap < max.count(); ++i) cap *= 2;
  cap = std::min<int64_t>(cap, max.count());
  return std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(lowest, std::max(lowest, cap))(rng));
}

// The same with its own attempt count and generator: next() for every failure, reset() after a
// success.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max) : initial_(initial), max_(max) {}
  std::chrono::milliseconds next() { return full_jitter(initial_, max_, uint64_t(++attempt_), rng_); }
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_, max_;
  int attempt_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace edgeflow::sdk
