// postgres: writes messages into PostgreSQL tables, set-based, in one transaction per batch.
//
//   sinks:
//     db:
//       type: postgres
//       dsn: "host=db port=5432 dbname=erp user=edgeflow password=${env:PGPASSWORD}"
//       mode: cdc                      # upsert (default) | insert | cdc
//       table: "${source.schema}.${source.table}"   # the default in cdc mode
//
// A batch is the messages held since the last apply (up to batch_rows, or what the runtime's
// flush() finds). Its rows go to the server as one JSON array per statement, which the server
// turns into typed rows with json_to_recordset: one INSERT ... ON CONFLICT (or DELETE ... USING,
// or TRUNCATE) per run of rows of the same kind, table and columns, in message order, all in one
// transaction, acked only after COMMIT. A statement that fails on a row's value or a constraint is
// rolled back to its savepoint and its rows are tried one by one: the failing ones go to the dead
// letter with the server's error (and the column), the rest commits. A lost connection acks the
// batch as retry (the runtime resends it after a backoff) and reconnects; a serialization failure
// or a deadlock runs the transaction again. Redelivery is harmless: upserts and deletes by key
// are idempotent.
#include "applier.hpp"
#include "copy_text.hpp"
#include "pg_client.hpp"

#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

using namespace edgeflow::sdk;
namespace pg = edgeflow::pg;
using edgeflow::sdk::expr::append_json_string;

namespace {

// The column type a new column gets from the first value seen in it (schema_evolution,
// create_tables): JSON cannot say more.
std::string inferred_type(Value v) {
  switch (v.type()) {
    case EF_TYPE_BOOL: return "boolean";
    case EF_TYPE_INT: return "bigint";
    case EF_TYPE_DOUBLE: return v.number_text().empty() ? "double precision" : "numeric";
    case EF_TYPE_ARRAY:
    case EF_TYPE_OBJECT: return "jsonb";
    default: return "text";
  }
}

struct Column {
  std::string name;
  std::string type;  // format_type(): "integer", "numeric(10,2)", "bytea[]", ...
  bool key = false;
  pg::ColumnKind kind = pg::ColumnKind::plain;
  // How a JSON value reaches the column: bytea travels as base64 text.
  std::string def() const {
    std::string t = type == "bytea" ? "text" : type == "bytea[]" ? "text[]" : type;
    return pg::quote_ident(name) + " " + t;
  }
  std::string expr() const {
    std::string r = "r." + pg::quote_ident(name);
    if (type == "bytea") return "decode(" + r + ", 'base64')";
    if (type == "bytea[]") return "ARRAY(SELECT decode(e, 'base64') FROM unnest(" + r + ") e)";
    return r;
  }
};

struct Table {
  std::string name;    // as the operator or the event wrote it
  std::string quoted;  // "schema"."table"
  std::vector<Column> columns;
  // Transparent: looking a document's field name up allocates nothing.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view v) const { return std::hash<std::string_view>{}(v); }
  };
  std::unordered_map<std::string, size_t, Hash, std::equal_to<>> index;
  std::vector<size_t> keys;
  std::set<std::string> warned;  // fields with no column, reported once

  const Column* find(std::string_view n) const {
    auto it = index.find(n);
    return it == index.end() ? nullptr : &columns[it->second];
  }
};

using pg::OpKind;

// One statement's worth of one message: a row to write, a key to delete, a table to truncate.
struct Op {
  OpKind kind;
  Table* table;
  std::vector<size_t> cols;  // the row's columns, in the row's order
  std::string row;           // a JSON object of exactly those columns
  std::string key;           // the key values as JSON, to keep one key's changes in order
  size_t held;               // its message in held_.held
  std::string copy = {};     // create and insert: the row as a COPY text line; empty: not copyable
};

// Why a message goes to the dead letter rather than the table.
struct Reject {
  std::string reason;
};

class PostgresSink : public Sink {
 public:
  struct Config {
    std::string dsn;
    std::string mode = "upsert";
    std::string table;
    std::vector<std::string> key;
    Json columns;
    int64_t batch_rows = 1000;
    std::string schema_evolution = "none";
    bool create_tables = false;
  };
  static constexpr const char* type = "postgres";
  static constexpr const char* description =
      "Writes messages into PostgreSQL tables (upsert, insert, or applying CDC events), set-based, "
      "one transaction per batch, acknowledged after COMMIT.";
  static void describe(Spec<Config>& s) {
    s.option("dsn", &Config::dsn).required().secret()
        .doc("libpq connection string or URI of the target database.")
        .example("host=db.local port=5432 dbname=erp user=edgeflow password=${env:PGPASSWORD}");
    s.option("mode", &Config::mode).one_of("upsert|insert|cdc")
        .doc("upsert: INSERT ... ON CONFLICT (key) DO UPDATE of the document's fields; insert: plain "
             "INSERT (a duplicate key is dead-lettered); cdc: apply postgres_cdc events (c/r/u upsert "
             "\"after\", d deletes by key, t truncates; TOAST columns listed as unchanged are left as they are).")
        .example("cdc");
    s.option("table", &Config::table)
        .doc("Target table, schema.table or table, a template: ${expression} parts are evaluated per message. "
             "Default in cdc mode: ${source.schema}.${source.table}; required otherwise.")
        .example("\"mirror.${source.table}\"");
    s.option("key", &Config::key)
        .doc("Key columns for upserts and deletes; default: the table's primary key. ON CONFLICT needs a "
             "unique index on exactly these columns.")
        .example("[tenant_id, order_id]");
    s.option("columns", &Config::columns)
        .doc("Column: expression, evaluated per message, in place of the document's top-level fields "
             "(modes upsert and insert); a column left out is not written.")
        .example("{ order_id: id, customer: upper(customer.name), total: \"round(amount * 1.2, 2)\" }");
    s.option("batch_rows", &Config::batch_rows).range(1, 100000)
        .doc("Messages held before they are applied in one transaction; flush() (flush_interval, a full "
             "flow, the drain) applies fewer.")
        .example("5000");
    s.option("schema_evolution", &Config::schema_evolution).one_of("none|add_columns")
        .doc("A field with no column: none ignores it (logged once per table and field); add_columns adds "
             "the column (type from the value: text, bigint, numeric, double precision, boolean, jsonb). "
             "Columns are never dropped and types never changed.")
        .example("add_columns");
    s.option("create_tables", &Config::create_tables)
        .doc("Create a missing table from the first message for it (columns typed like add_columns, the "
             "primary key from a cdc event's key); otherwise a missing table fails the flow, naming it.");
  }

  PostgresSink(Context c, Config cfg)
      : Sink(c),
        cfg_(std::move(cfg)),
        client_(cfg_.dsn),
        applier_(cfg_.dsn, [this](Message m, ef_ack_status s, std::string_view why) { ack(m, s, why); },
                 [this](std::string_view name, double v) { context().counter(name, v); }) {
    mode_ = cfg_.mode == "cdc" ? Mode::cdc : cfg_.mode == "insert" ? Mode::insert : Mode::upsert;
    if (cfg_.table.empty()) {
      if (mode_ != Mode::cdc)
        throw c.config_error("table", "required with mode " + cfg_.mode + "; name the target table, like table: public.orders");
      cfg_.table = "${source.schema}.${source.table}";
    }
    table_ = expr::compile_template(c, "table", cfg_.table);
    if (!cfg_.columns.is_null()) {
      const Json::Object* cols = cfg_.columns.object();
      if (!cols || cols->empty())
        throw c.config_error("columns", "is a map of column: expression, like { order_id: id, total: amount }");
      if (mode_ == Mode::cdc)
        throw c.config_error("columns", "applies to modes upsert and insert; shape CDC events with a map step and "
                                        "upsert them, or let mode cdc write their columns as they are");
      for (auto& [name, text] : *cols) {
        if (!text.string()) throw c.config_error("columns." + name, "is an expression written as text, like " + name + ": after." + name);
        columns_.emplace_back(name, expr::compile_option(c, "columns." + name, *text.string()));
      }
    }
    if (!client_.redact().parse_error().empty())
      throw c.config_error("dsn", "not a libpq connection string: " + client_.redact().parse_error());
  }

  void start() override {
    client_.connect();
    pg::Result r = client_.exec("SELECT current_setting('transaction_read_only'), pg_is_in_recovery()::text");
    if (r.get(0, 0) == "on" || r.get(0, 1) == "true")
      throw Error("postgres: the target database is read-only (a standby, or default_transaction_read_only "
                  "for this role); point dsn at the primary, or ALTER ROLE ... SET default_transaction_read_only = off");
    if (table_.is_literal()) table(table_.literal(), nullptr);
    applier_.start();
  }

  void write(Batch batch) override {
    log_notes();
    for (size_t i = 0; i < batch.size(); ++i) {
      Message m = batch[i];
      size_t held = held_.held.size();
      held_.held.push_back({m, {}});
      size_t first = ops_.size();
      try {
        prepare(m, held);
      } catch (const Reject& r) {
        ops_.resize(first);
        held_.held.pop_back();
        ack(m, EF_ACK_REJECTED, r.reason);
        continue;
      } catch (...) {  // the flow fails: this message stays unacked and comes again
        ops_.resize(first);
        held_.held.pop_back();
        throw;
      }
      if (ops_.size() == first) {  // nothing to apply (a transaction marker): done
        held_.held.pop_back();
        ack(m, EF_ACK_DELIVERED);
      }
    }
    if (held_.held.size() >= size_t(cfg_.batch_rows)) {
      applier_.wait_room(std::chrono::milliseconds(100));
      seal();
    }
  }

  // Hands what is held to the worker without waiting for it.
  void flush(int32_t) override {
    log_notes();
    seal();
  }

  // What the worker has is applied and acked before stop() returns if the server takes it; a
  // batch it cannot commit, and what was not handed to it, stay unacked: read again after a restart.
  void stop() override {
    seal();
    applier_.stop();
    log_notes();
    client_.close();
  }

 private:
  enum class Mode { upsert, insert, cdc };

  // --- turning messages into ops ---

  void prepare(Message m, size_t held) {
    Value doc;
    try {
      doc = m.doc();
    } catch (const Error& e) {
      throw Reject{e.what()};
    }
    if (!doc.is_object()) throw Reject{"postgres: the document is " + std::string(doc.type_name()) + ", not an object"};
    if (mode_ != Mode::cdc) {
      Table& t = table(table_name(m), &doc);
      OpKind kind = mode_ == Mode::insert ? OpKind::insert : OpKind::upsert;
      if (columns_.empty()) add_row(kind, t, doc, held);
      else add_mapped_row(kind, t, m, held);
      return;
    }
    Value op = doc["op"];
    std::string_view kind = op.is_string() ? op.as_string() : std::string_view();
    if (kind == "begin" || kind == "commit" || kind == "m") return;
    if (kind != "c" && kind != "r" && kind != "u" && kind != "d" && kind != "t")
      throw Reject{"postgres: not a CDC event: op is " + (op ? "'" + std::string(kind) + "'" : std::string("missing")) +
                   " (mode cdc applies c, r, u, d and t)"};
    Table& t = table(table_name(m), &doc);
    if (kind == "t") {
      ops_.push_back({OpKind::truncate, &t, {}, {}, {}, held});
      return;
    }
    Value key = doc["key"];
    if (kind == "d") {
      Value before = doc["before"];
      add_key(t, before.is_object() ? before : key, held);
      return;
    }
    Value after = doc["after"];
    if (!after.is_object()) throw Reject{"postgres: a '" + std::string(kind) + "' event without an \"after\" object"};
    // An update that changed the key moves the row: delete it under the old key first.
    Value before = doc["before"];
    if (kind == "u" && before.is_object() && key_text(t, before, false) != key_text(t, after, false))
      add_key(t, before, held);
    add_row(kind == "u" ? OpKind::update : OpKind::create, t, after, held);
  }

  // The table a message goes to.
  std::string table_name(Message m) const {
    if (table_.is_literal()) return table_.literal();
    try {
      return table_.render(m);
    } catch (const expr::EvalError& e) {
      throw Reject{"postgres: table: `" + cfg_.table + "`: " + e.what()};
    }
  }

  void add_row(OpKind kind, Table& t, Value row, size_t held) {
    Op op{kind, &t, {}, "{", {}, held};
    bool copyable = kind == OpKind::create || kind == OpKind::update || kind == OpKind::insert;
    for (size_t i = 0; i < row.size(); ++i) {
      auto [name, value] = row.member(i);
      const Column* col = t.find(name);
      if (!col && cfg_.schema_evolution == "add_columns") col = add_column(t, name, value);
      if (!col) {
        if (t.warned.insert(std::string(name)).second)
          context().warn("postgres: table " + t.name + " has no column " + std::string(name) +
                         "; the field is not written (schema_evolution: add_columns adds such columns)");
        continue;
      }
      if (op.cols.size()) op.row += ',';
      op.cols.push_back(size_t(col - t.columns.data()));
      append_json_string(op.row, name);
      op.row += ':';
      pg::append_json_text(op.row, value);
      if (copyable) {
        if (op.cols.size() > 1) op.copy += '\t';
        copyable = pg::append_copy_field(op.copy, value, col->kind);
      }
    }
    op.row += '}';
    if (copyable) op.copy += '\n';
    else op.copy.clear();
    if (op.cols.empty()) throw Reject{"postgres: no field of the document is a column of " + t.name};
    if (kind != OpKind::insert) {
      require_key(t);
      op.key = key_text(t, row, true);
    }
    ops_.push_back(std::move(op));
  }

  // A row of the columns: map (by the JSON statement: its values are expression values).
  void add_mapped_row(OpKind kind, Table& t, Message m, size_t held) {
    Op op{kind, &t, {}, "{", {}, held};
    std::vector<std::string> keys(t.keys.size());
    for (auto& [name, e] : columns_) {
      const Column* col = t.find(name);
      if (!col) throw Error("postgres: table " + t.name + " has no column " + name + " (named in columns:); add it or drop it from columns:");
      expr::Val v;
      try {
        v = expr::eval_option(e, "columns." + name, m);
      } catch (const expr::EvalError& err) {
        throw Reject{"postgres: " + std::string(err.what())};
      }
      size_t index = size_t(col - t.columns.data());
      if (op.cols.size()) op.row += ',';
      op.cols.push_back(index);
      append_json_string(op.row, name);
      op.row += ':';
      expr::append_json(op.row, v);
      for (size_t k = 0; k < t.keys.size(); ++k)
        if (t.keys[k] == index) expr::append_json(keys[k], v);
    }
    op.row += '}';
    if (kind != OpKind::insert) {
      require_key(t);
      for (size_t k = 0; k < t.keys.size(); ++k) {
        if (keys[k].empty())
          throw Error("postgres: key column " + t.columns[t.keys[k]].name + " of " + t.name + " is not among columns:; add it");
        op.key += keys[k] + '\x1f';
      }
    }
    ops_.push_back(std::move(op));
  }

  void add_key(Table& t, Value from, size_t held) {
    require_key(t);
    Op op{OpKind::remove, &t, t.keys, "{", key_text(t, from, true), held};
    for (size_t k = 0; k < t.keys.size(); ++k) {
      const Column& c = t.columns[t.keys[k]];
      if (k) op.row += ',';
      append_json_string(op.row, c.name);
      op.row += ':';
      pg::append_json_text(op.row, from[c.name]);
    }
    op.row += '}';
    ops_.push_back(std::move(op));
  }

  void require_key(const Table& t) const {
    if (t.keys.empty())
      throw Reject{"postgres: table " + t.name + " has no primary key: upserts and deletes need one; add it "
                   "(ALTER TABLE " + t.quoted + " ADD PRIMARY KEY (...)), set key: [columns], or use mode: insert"};
  }

  // The key values of a row as JSON text; `required`: a missing key column rejects the message.
  std::string key_text(const Table& t, Value row, bool required) const {
    std::string out;
    for (size_t k : t.keys) {
      Value v = row[t.columns[k].name];
      if (!v && required) throw Reject{"postgres: key column " + t.columns[k].name + " of " + t.name + " is missing"};
      pg::append_json_text(out, v);
      out += '\x1f';
    }
    return out;
  }

  // --- the catalog ---

  // The table by name, introspected on first use. A table that is missing, or that this role may
  // not write, fails the flow (nothing is lost; it resumes once fixed) unless create_tables.
  Table& table(const std::string& name, const Value* first) {
    auto it = tables_.find(name);
    if (it != tables_.end()) return *it->second;
    auto t = std::make_unique<Table>();
    t->name = name;
    t->quoted = pg::quote_table(name);
    connected();
    bool found;
    try {
      found = introspect(*t);
    } catch (const pg::SqlError& e) {
      if (!e.connection_lost()) throw;
      // The catalog's connection idles between tables: the server may have closed it since.
      client_.close();
      connected();
      found = introspect(*t);
    }
    if (!found) {
      if (!cfg_.create_tables || !first)
        throw Error("postgres: table " + name + " does not exist in the target database; create it (with a primary key "
                    "for upserts and deletes), or set create_tables: true");
      create_table(*t, *first);
      if (!introspect(*t)) throw Error("postgres: table " + name + " is still missing after CREATE TABLE");
    }
    return *tables_.emplace(name, std::move(t)).first->second;
  }

  bool introspect(Table& t) {
    std::string regclass = t.quoted;
    pg::Result r = client_.exec(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(a.attnum = ANY(i.indkey), false)::text, "
        "has_table_privilege(c.oid, 'INSERT')::text, has_table_privilege(c.oid, 'UPDATE')::text, "
        "has_table_privilege(c.oid, 'DELETE')::text, current_user "
        "FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
        "WHERE c.oid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        {&regclass});
    if (r.rows() == 0) return false;
    std::vector<std::string> missing;
    if (r.get(0, 3) != "true") missing.push_back("INSERT");
    if (mode_ != Mode::insert && r.get(0, 4) != "true") missing.push_back("UPDATE");
    if (mode_ == Mode::cdc && r.get(0, 5) != "true") missing.push_back("DELETE");
    if (!missing.empty()) {
      std::string grant;
      for (auto& p : missing) grant += (grant.empty() ? "" : ", ") + p;
      throw Error("postgres: role " + std::string(r.get(0, 6)) + " may not " + grant + " on " + t.name +
                  "; as its owner run: GRANT " + grant + " ON " + t.quoted + " TO " + pg::quote_ident(r.get(0, 6)));
    }
    t.columns.clear();
    t.index.clear();
    t.keys.clear();
    for (int i = 0; i < r.rows(); ++i) {
      t.index[std::string(r.get(i, 0))] = t.columns.size();
      t.columns.push_back({std::string(r.get(i, 0)), std::string(r.get(i, 1)), r.get(i, 2) == "true",
                           pg::column_kind(r.get(i, 1))});
    }
    if (!cfg_.key.empty()) {
      for (auto& k : cfg_.key) {
        auto it = t.index.find(k);
        if (it == t.index.end()) throw Error("postgres: key column " + k + " is not a column of " + t.name);
        t.keys.push_back(it->second);
      }
    } else {
      for (size_t i = 0; i < t.columns.size(); ++i)
        if (t.columns[i].key) t.keys.push_back(i);
    }
    return true;
  }

  const Column* add_column(Table& t, std::string_view name, Value value) {
    client_.run("ALTER TABLE " + t.quoted + " ADD COLUMN IF NOT EXISTS " + pg::quote_ident(name) + " " +
                inferred_type(value));
    context().info("postgres: added column " + std::string(name) + " " + inferred_type(value) + " to " + t.name);
    introspect(t);
    statements_.clear();
    return t.find(name);
  }

  void create_table(Table& t, Value doc) {
    bool cdc = mode_ == Mode::cdc;
    Value row = cdc ? doc["after"] : doc;
    Value key = cdc ? doc["key"] : Value();
    if (!row.is_object()) throw Reject{"postgres: table " + t.name + " is missing and this event has no row to create it from"};
    std::string sql = "CREATE TABLE IF NOT EXISTS " + t.quoted + " (";
    for (size_t i = 0; i < row.size(); ++i) {
      auto [name, value] = row.member(i);
      sql += (i ? ", " : "") + pg::quote_ident(name) + " " + inferred_type(value);
    }
    std::vector<std::string> keys = cfg_.key;
    if (keys.empty() && key.is_object())
      for (size_t i = 0; i < key.size(); ++i) keys.emplace_back(key.member(i).first);
    if (!keys.empty()) {
      sql += ", PRIMARY KEY (";
      for (size_t i = 0; i < keys.size(); ++i) sql += (i ? ", " : "") + pg::quote_ident(keys[i]);
      sql += ")";
    }
    client_.run(sql + ")");
    context().info("postgres: created table " + t.name);
  }

  void connected() {
    try {
      client_.connect();
    } catch (const pg::SqlError& e) {
      throw Error(std::string("postgres: ") + e.what());
    }
  }

  // --- applying ---

  // The statements of a run of ops that share kind, table and columns, built on first use.
  const std::shared_ptr<const pg::Statements>& statements(const Op& op) {
    std::string id = std::to_string(int(op.kind)) + '\x1f' + op.table->name;
    for (size_t c : op.cols) id += '\x1f' + std::to_string(c);
    auto [it, fresh] = statements_.try_emplace(id);
    if (!fresh) return it->second;
    const Table& t = *op.table;
    auto s = std::make_shared<pg::Statements>();
    s->kind = op.kind;
    s->table = t.name;
    std::string defs, names, exprs;
    for (size_t c : op.cols) {
      defs += (defs.empty() ? "" : ", ") + t.columns[c].def();
      names += (names.empty() ? "" : ", ") + pg::quote_ident(t.columns[c].name);
      exprs += (exprs.empty() ? "" : ", ") + t.columns[c].expr();
      s->probes.emplace_back(t.columns[c].name, "SELECT " + t.columns[c].expr() + " FROM json_to_recordset($1::json) AS r(" +
                                                    t.columns[c].def() + ")");
    }
    std::string rows = " json_to_recordset($1::json) AS r(" + defs + ")";
    if (op.kind == OpKind::truncate) {
      s->sql = "TRUNCATE " + t.quoted;
    } else if (op.kind == OpKind::remove) {
      s->sql = "DELETE FROM " + t.quoted + " AS t USING" + rows + " WHERE ";
      for (size_t k = 0; k < t.keys.size(); ++k) {
        const Column& c = t.columns[t.keys[k]];
        s->sql += (k ? " AND t." : "t.") + pg::quote_ident(c.name) + " = " + c.expr();
      }
    } else {
      s->sql = "INSERT INTO " + t.quoted + " (" + names + ") SELECT " + exprs + " FROM" + rows;
      if (op.kind != OpKind::insert) {  // create and update: an upsert, for rows COPY could not take
        std::string conflict, set;
        for (size_t k : t.keys) conflict += (conflict.empty() ? "" : ", ") + pg::quote_ident(t.columns[k].name);
        for (size_t c : op.cols) {
          if (std::find(t.keys.begin(), t.keys.end(), c) != t.keys.end()) continue;
          std::string n = pg::quote_ident(t.columns[c].name);
          set += (set.empty() ? "" : ", ") + n + " = EXCLUDED." + n;
        }
        s->sql += " ON CONFLICT (" + conflict + ") DO " + (set.empty() ? "NOTHING" : "UPDATE SET " + set);
      }
      if (op.kind == OpKind::create || op.kind == OpKind::insert)
        s->copy_sql = "COPY " + t.quoted + " (" + names + ") FROM STDIN";
      if (op.kind == OpKind::update) staged_update(op, *s, names);
    }
    return it->second = std::move(s);
  }

  // The held messages as the worker's next batch: runs of ops that share kind, table and
  // columns become one statement each; a key appears once per run, so its changes keep their order.
  void seal() {
    if (held_.held.empty()) return;
    pg::Work w = std::move(held_);
    held_ = {};
    w.rows.reserve(ops_.size());
    std::unordered_set<std::string> keys;
    size_t begin = 0;
    for (size_t i = 0; i <= ops_.size(); ++i) {
      bool cut = i == ops_.size() || i == begin;
      if (!cut) {
        const Op& a = ops_[begin];
        const Op& b = ops_[i];
        cut = a.kind != b.kind || a.table != b.table || a.cols != b.cols || b.kind == OpKind::truncate ||
              (!b.key.empty() && keys.count(b.key));
      }
      if (cut && i > begin) {
        w.segments.push_back({statements(ops_[begin]), begin, i});
        keys.clear();
        begin = i;
      }
      if (i == ops_.size()) break;
      if (!ops_[i].key.empty()) keys.insert(ops_[i].key);
      w.rows.push_back({std::move(ops_[i].row), std::move(ops_[i].copy), ops_[i].held});
    }
    ops_.clear();
    applier_.submit(std::move(w));
  }

  // A cdc update's fast path: its rows by COPY into a temporary table of the run's columns, then
  // one UPDATE ... FROM it. Updating only key columns changes nothing: the upsert does it.
  void staged_update(const Op& op, pg::Statements& s, const std::string& names) {
    const Table& t = *op.table;
    std::string set, match, defs;
    for (size_t c : op.cols) {
      std::string n = pg::quote_ident(t.columns[c].name);
      defs += (defs.empty() ? "" : ", ") + n + " " + t.columns[c].type;
      if (std::find(t.keys.begin(), t.keys.end(), c) != t.keys.end()) match += (match.empty() ? "" : " AND ") + ("t." + n) + " = s." + n;
      else set += (set.empty() ? "" : ", ") + n + " = s." + n;
    }
    if (set.empty() || match.empty()) return;
    // Numbered for the life of the sink: after a column is added, a new set never meets an old table.
    std::string stage = "edgeflow_stage_" + std::to_string(stages_++);
    s.stage_sql = "CREATE TEMP TABLE IF NOT EXISTS " + stage + " (" + defs + ") ON COMMIT DELETE ROWS";
    s.copy_sql = "COPY " + stage + " (" + names + ") FROM STDIN";
    s.update_sql = "UPDATE " + t.quoted + " AS t SET " + set + " FROM " + stage + " AS s WHERE " + match;
    s.clear_sql = "TRUNCATE " + stage;
  }

  void log_notes() {
    for (auto& n : applier_.notes()) context().warn(n);
  }

  Config cfg_;
  Mode mode_ = Mode::upsert;
  expr::Template table_;
  std::vector<std::pair<std::string, expr::Expr>> columns_;
  pg::Client client_;  // the catalog's: introspection and schema changes, on the flow thread
  std::map<std::string, std::unique_ptr<Table>> tables_;
  std::unordered_map<std::string, std::shared_ptr<const pg::Statements>> statements_;
  size_t stages_ = 0;  // staging tables made
  pg::Work held_;  // the messages of the batch being gathered (held, not yet rows)
  std::vector<Op> ops_;
  pg::Applier applier_;
};

}  // namespace

EDGEFLOW_PLUGIN("postgres", "0.1.0", PostgresSink)
