#include "publication.hpp"

#include <edgeflow/sdk/host.hpp>

#include <algorithm>

namespace edgeflow::pg {

using sdk::Error;

Publication::Publication(ReplicationConnection& conn, Settings s) : conn_(conn), s_(std::move(s)), db_(conn.database()) {
  for (auto& t : s_.tables) include_.push_back(parse_table_name(t).qualified());
}

std::string Publication::table_list(const std::vector<std::string>& tables) const {
  std::string s;
  for (auto& t : tables) {
    auto n = parse_table_name(t);
    s += (s.empty() ? "" : ", ") + conn_.identifier(n.schema) + "." + conn_.identifier(n.name);
  }
  return s;
}

// The table's OID, or nullopt when it does not exist.
std::optional<Oid> Publication::table_oid(const TableName& n) {
  auto r = conn_.query("SELECT to_regclass(" + conn_.literal(conn_.identifier(n.schema) + "." +
                                                               conn_.identifier(n.name)) + ")::oid");
  if (r.empty() || !r[0][0]) return std::nullopt;
  return Oid(std::stoul(*r[0][0]));
}

void Publication::ensure() {
  for (auto& t : s_.tables) {
    auto n = parse_table_name(t);
    auto oid = table_oid(n);
    if (!oid)
      throw Error(s_.where("tables") + ": table " + n.qualified() + " does not exist in database " +
                  db_ + " (as seen by role " + conn_.user() + ")");
    include_oids_[*oid] = n.qualified();
  }
  for (auto& t : s_.exclude_tables)
    if (auto oid = table_oid(parse_table_name(t))) exclude_oids_.insert(*oid);
  std::string pub = conn_.literal(s_.publication);
  // Partitioned tables are published under their own name, not their partitions' (PostgreSQL 13+).
  std::string create = "CREATE PUBLICATION " + conn_.identifier(s_.publication) +
                       (s_.tables.empty() ? " FOR ALL TABLES" : " FOR TABLE " + table_list(s_.tables)) +
                       (conn_.server_version() >= 130000 ? " WITH (publish_via_partition_root = true)" : "");
  auto found = conn_.query("SELECT 1 FROM pg_publication WHERE pubname = " + pub);
  if (found.empty()) {
    if (!s_.create)
      throw Error(s_.where("publication") + ": publication " + s_.publication +
                  " does not exist in database " + db_ + " and create_publication is false: run " + create + ";");
    try {
      conn_.query(create);
    } catch (const std::exception& e) {
      throw Error("cannot create publication " + s_.publication + ": " + e.what() +
                  " — have its owner or a superuser run: " + create + ";");
    }
    s_.info("created publication " + s_.publication);
  } else if (s_.own && !s_.tables.empty()) {
    add_listed();
  }
  check_published();
}

// A table added to `tables` joins the flow's own publication (edgeflow_<flow>, which it
// manages); its rows are then read by an incremental snapshot. A publication the operator
// named stays theirs: check_published() says what to run.
void Publication::add_listed() {
  std::string pub = conn_.literal(s_.publication);
  auto all = conn_.query("SELECT puballtables::text FROM pg_publication WHERE pubname = " + pub);
  if (all.empty() || all[0][0].value_or("") == "true") return;
  auto listed = conn_.query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = " + pub);
  for (auto& want : include_) {
    if (std::any_of(listed.begin(), listed.end(), [&](auto& row) { return row[0].value_or("") == want; })) continue;
    try {
      conn_.query("ALTER PUBLICATION " + conn_.identifier(s_.publication) + " ADD TABLE " + table_list({want}));
      s_.info("added table " + want + " to publication " + s_.publication);
    } catch (const std::exception& e) {
      s_.warn("cannot add table " + want + " to publication " + s_.publication + ": " + e.what());
    }
  }
}

// Every listed table must be one whose changes the publication sends under that table's name,
// or its rows would be filtered out in silence.
void Publication::check_published() {
  if (include_.empty()) return;
  std::string pub = conn_.literal(s_.publication);
  auto listed = conn_.query("SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = " + pub);
  std::string alter = "ALTER PUBLICATION " + conn_.identifier(s_.publication);
  for (auto& want : include_) {
    if (std::any_of(listed.begin(), listed.end(), [&](auto& row) { return row[0].value_or("") == want; }))
      continue;
    auto n = parse_table_name(want);
    std::string regclass = conn_.literal(conn_.identifier(n.schema) + "." + conn_.identifier(n.name));
    // relkind, persistence, the publication's via-root setting (13+), its published ancestor (12+).
    const int version = conn_.server_version();
    auto info = conn_.query(
        "SELECT c.relkind::text, c.relpersistence::text, " +
        std::string(version >= 130000 ? "p.pubviaroot::text, " : "'false', ") +
        (version >= 120000
             ? "(SELECT a.relid::regclass::text FROM pg_partition_ancestors(c.oid) a "
               " JOIN pg_class ac ON ac.oid = a.relid JOIN pg_namespace an ON an.oid = ac.relnamespace "
               " JOIN pg_publication_tables pt ON pt.schemaname = an.nspname AND pt.tablename = ac.relname "
               " WHERE pt.pubname = p.pubname AND a.relid <> c.oid LIMIT 1), "
             : "NULL, ") +
        "p.puballtables::text "
        "FROM pg_class c, pg_publication p WHERE c.oid = " + regclass + "::regclass AND p.pubname = " + pub);
    std::string where = s_.where("tables") + ": table " + want;
    if (info.empty()) throw Error(where + " or publication " + s_.publication + " vanished while starting");
    auto& r = info[0];
    if (r[1].value_or("") != "p")
      throw Error(where + " is " + (r[1].value_or("") == "t" ? "temporary" : "unlogged") +
                  ": its changes are not written to the WAL, so they cannot be captured; run ALTER TABLE " +
                  table_list({want}) + " SET LOGGED;");
    if (r[3])
      throw Error(where + " is a partition of " + *r[3] + ", and publication " + s_.publication +
                  " sends its changes as changes of " + *r[3] +
                  " (publish_via_partition_root): list " + *r[3] +
                  " in tables instead and keep this partition's rows with a filter on the partition key");
    if (r[0].value_or("") == "p" && r[2].value_or("") != "true")
      throw Error(where + " is partitioned, and publication " + s_.publication +
                  " sends its changes under the names of its partitions: run " + alter +
                  " SET (publish_via_partition_root = true); or list the partitions in tables");
    if (r[4].value_or("") == "true")
      throw Error(where + " is not published by publication " + s_.publication +
                  " (FOR ALL TABLES) on this server: capture it with a publication FOR TABLE " + table_list({want}));
    throw Error(where + " is not in publication " + s_.publication + ": run " + alter + " ADD TABLE " +
                table_list({want}) + ";");
  }
}

}  // namespace edgeflow::pg
