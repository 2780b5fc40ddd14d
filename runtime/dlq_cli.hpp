// `edgeflow dlq list|show|replay|purge`: the repair station from the command line. list, show
// and purge read the store in the state directory (the daemon may run or not); replay asks the
// running daemon's admin API, which re-injects the letters into its flows.
#pragma once

#include "repair.hpp"

#include <string>
#include <vector>

namespace edgeflow {

struct DlqArgs {
  std::vector<std::string> positional;  // list | show ID | replay | purge
  Params filters;                       // flow, stage, reason, since, until, state, id, limit
  std::string state_dir;
  std::string admin;  // [host:]port of the running daemon (replay)
  std::string admin_token;
  std::string from = "stage";  // replay: stage | source
  std::string timeout = "30s";
  bool json = false;
  bool all = false;  // purge without a filter
};

int cmd_dlq(const DlqArgs& a);

}  // namespace edgeflow
