// The publication a postgres_cdc source reads through, checked at start: the listed tables exist,
// the publication is there (created when missing and allowed), the flow's own publication has
// every listed table, and each listed table is published under its own name (not as a
// partition of another, not unlogged), or the error says what to run.
#pragma once

#include "replication.hpp"
#include "snapshot.hpp"

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace edgeflow::pg {

class Publication {
 public:
  struct Settings {
    std::string publication;
    std::vector<std::string> tables, exclude_tables;  // as configured
    bool create = true;  // create_publication
    bool own = false;    // the flow's own (edgeflow_<flow>): listed tables are added to it
    std::function<std::string(const std::string&)> where;  // a config key's file:line:col
    std::function<void(const std::string&)> info, warn;
  };
  Publication(ReplicationConnection& conn, Settings s);

  // Throws sdk::Error with the fix.
  void ensure();
  // The listed tables by OID (as listed), and the excluded ones: what ensure() resolved.
  const std::unordered_map<Oid, std::string>& listed() const { return include_oids_; }
  const std::unordered_set<Oid>& excluded() const { return exclude_oids_; }

 private:
  std::string table_list(const std::vector<std::string>& tables) const;
  std::optional<Oid> table_oid(const TableName& n);
  void add_listed();
  void check_published();

  ReplicationConnection& conn_;
  Settings s_;
  std::string db_;
  std::vector<std::string> include_;  // listed, schema.table
  std::unordered_map<Oid, std::string> include_oids_;
  std::unordered_set<Oid> exclude_oids_;
};

}  // namespace edgeflow::pg
