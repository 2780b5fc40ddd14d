// The repair station's operations on a running daemon's dead letters: select by filter, replay
// into the flows, purge. Shared by the admin API (/dlq...) and `edgeflow dlq`.
#pragma once

#include "engine.hpp"

#include <letter_store.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow {

using Params = std::vector<std::pair<std::string, std::string>>;

// flow, stage, reason (substring, or glob with * ?), since and until (an ISO 8601 time, or a
// duration meaning that long ago: 1h), state (new | replayed), id (repeatable, or a1,a2...),
// limit; an unknown name is an error, as is a bad value, saying which.
bool filter_from_params(const Params& params, dlq::Filter& f, std::string& error);

struct ReplayOptions {
  bool from_source = false;  // every letter from the first step, not the stage that rejected it
  std::chrono::milliseconds timeout{30000};
};

// Replays the selected letters (state new unless the filter says) into their flows in this
// daemon and waits for their outcomes: delivered ones are marked replayed; one rejected again is
// back in the store with its history (the dead letter carries the replay header). Returns the
// summary as JSON.
std::string replay_letters(Runtime& rt, dlq::LetterStore& store, dlq::Filter f, const ReplayOptions& o);

// The letters as JSON: {"count": n, "letters": [...]} (payloads left out).
std::string letters_json(const std::vector<dlq::Letter>& letters);

}  // namespace edgeflow
