// The edgeflow command line: run, validate, test, docs, asyncapi, plugins list|inspect, plugin new,
// tap, dlq, reload, cdc, dev kafka.
#include "admin.hpp"
#include "admin_client.hpp"
#include "asyncapi.hpp"
#include "file_watch.hpp"
#include "flow_test.hpp"
#include "reference_docs.hpp"
#include "dev_kafka.hpp"
#include "dlq_cli.hpp"
#include "engine.hpp"
#include "log.hpp"
#include "scaffold.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/URI.h>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <malloc.h>
#include <iostream>
#include <pthread.h>
#include <sys/resource.h>
#include <string>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace edgeflow;

namespace {

const char* kUsage = R"(edgeflow — micro-integration runtime

Usage:
  edgeflow run      [options] FLOW_FILE_OR_DIR...   run flows until they end or SIGTERM/SIGINT
  edgeflow validate [options] [--print] FLOW_FILE_OR_DIR...
                                                    check flows (and print them, secrets redacted)
  edgeflow plugins list    [options]                the plugins and component types found
  edgeflow plugins inspect [options] TYPE           the options of a component type
  edgeflow plugin new NAME --kind source|transformer|sink [--dir DIR]
                                                    write a plugin project (default DIR: ./NAME)
                                                    that builds against the installed SDK
  edgeflow tap      [options] FLOW [--stage STAGE] [--rate N]
                                                    print the events passing a stage of a running
                                                    flow (source by default; at most N a second)
  edgeflow dev kafka [--brokers N] [--partitions N] [--topic NAME]... [--port N]
                                                    an in-memory Kafka for development only
                                                    (`edgeflow dev kafka --help`)
  edgeflow dlq list|show ID|replay|purge [filters]  the dead letters of the default store: list
                                                    them, show one, replay them into the running
                                                    daemon's flows (its admin API), or purge them
                                                    (filters: --flow F --stage S --reason TEXT
                                                    --since T --until T --state new|replayed --id N
                                                    --limit N; replay: --from stage|source
                                                    --timeout 30s; --json; purge --all)
  edgeflow reload   [options]                      make the running daemon read its flow files
                                                    again (as SIGHUP or a changed file does); exit
                                                    1 and the errors when they are invalid
  edgeflow test     [options] [--junit FILE] [PATH...]
                                                    run the flow tests (*.test.yaml) in the paths
                                                    (directories searched; a flow file's tests are
                                                    NAME.test.yaml beside it; default: .): the
                                                    flow's steps run for real, its sinks captured;
                                                    exit 1 when a test fails; JUnit XML to FILE
  edgeflow cdc snapshot [options] FLOW TABLE...     an incremental snapshot of the tables, taken by
                                                    the running postgres_cdc flow while it streams
                                                    (its admin API); exit 1 with the reason if refused
  edgeflow asyncapi [options] [--out FILE] FLOW_FILE_OR_DIR...
                                                    the flows as an AsyncAPI 3.0 document: brokers,
                                                    listeners, topics, webhook paths, what each
                                                    flow receives and sends (secrets left out)
  edgeflow docs     [options] [--out DIR] [--check]  write the component reference (every type and
                                                    option of the plugins found, and the flow keys)
                                                    into DIR (default docs/reference); --check: exit
                                                    1 when DIR differs from it
  edgeflow version                                  the release and the plugin ABI it speaks

Options:
  --plugin-dir DIR      also load plugins from DIR (repeatable); $EDGEFLOW_PLUGIN_PATH too
  --no-default-plugins  do not load the plugins installed beside the daemon
  --state-dir DIR       positions, disk buffers and dead letters ($EDGEFLOW_STATE_DIR,
                        default ./edgeflow-state)
  --log-format FORMAT   logfmt (default) or json
  --log-level LEVEL     debug, info (default), warn or error
  --admin ADDRESS       the admin API (health, metrics, flows, tap): [HOST:]PORT or off
                        ($EDGEFLOW_ADMIN, default 127.0.0.1:9464); `tap` connects there
  --admin-token-file FILE
                        the admin API's bearer token ($EDGEFLOW_ADMIN_TOKEN), at least 16
                        characters; required to bind anywhere but loopback
  --max-file-size SIZE  the largest flow file read (default 16MiB)
)";

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> plugin_dirs;
  bool default_plugins = true;
  bool print = false;
  std::string state_dir;
  std::string admin = "127.0.0.1:9464";
  std::string admin_token;
  std::string stage;  // tap: "source" when not given
  Params dlq_filters;
  std::string from = "stage";
  std::string timeout = "30s";
  bool json = false;
  bool all = false;
  std::string rate = "10";
  std::string kind;
  std::string dir;
  std::string junit;
  std::string out = "docs/reference";
  bool out_given = false;
  bool check = false;
  bool log_level_given = false;
  YamlLimits yaml;
  LogConfig log;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "edgeflow: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  if (const char* s = std::getenv("EDGEFLOW_STATE_DIR")) a.state_dir = s;
  if (const char* s = std::getenv("EDGEFLOW_ADMIN")) a.admin = s;
  bool token_given = false;
  if (const char* s = std::getenv("EDGEFLOW_ADMIN_TOKEN")) {
    a.admin_token = s;
    token_given = true;
  }
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) {
      if (i + 1 >= argc) usage_error(std::string(name) + " needs a value");
      return std::string(argv[++i]);
    };
    if (arg == "--plugin-dir") a.plugin_dirs.push_back(value("--plugin-dir"));
    else if (arg == "--no-default-plugins") a.default_plugins = false;
    else if (arg == "--state-dir") a.state_dir = value("--state-dir");
    else if (arg == "--print") a.print = true;
    else if (arg == "--admin") a.admin = value("--admin");
    else if (arg == "--admin-token-file") {
      std::string file = value("--admin-token-file"), error;
      if (!host::read_regular_file(file, 4096, "a token is one line", a.admin_token, error))
        usage_error("--admin-token-file " + file + ": " + error);
      a.admin_token = a.admin_token.substr(0, a.admin_token.find('\n'));
      while (!a.admin_token.empty() && std::isspace(static_cast<unsigned char>(a.admin_token.back())))
        a.admin_token.pop_back();
      token_given = true;
    } else if (arg == "--max-file-size") {
      std::string v = value("--max-file-size");
      if (!host::parse_size(v, a.yaml.max_file_bytes) || a.yaml.max_file_bytes == 0)
        usage_error("--max-file-size is a size like 16MiB or 64MiB, not '" + v + "'");
    } else if (arg == "--stage") {
      a.stage = value("--stage");
      a.dlq_filters.emplace_back("stage", a.stage);
    } else if (arg == "--flow" || arg == "--reason" || arg == "--since" || arg == "--until" || arg == "--state" ||
               arg == "--id" || arg == "--limit") {
      a.dlq_filters.emplace_back(arg.substr(2), value(arg.c_str()));
    } else if (arg == "--from") a.from = value("--from");
    else if (arg == "--timeout") a.timeout = value("--timeout");
    else if (arg == "--json") a.json = true;
    else if (arg == "--all") a.all = true;
    else if (arg == "--rate") a.rate = value("--rate");
    else if (arg == "--kind") a.kind = value("--kind");
    else if (arg == "--dir") a.dir = value("--dir");
    else if (arg == "--junit") a.junit = value("--junit");
    else if (arg == "--out") {
      a.out = value("--out");
      a.out_given = true;
    }
    else if (arg == "--check") a.check = true;
    else if (arg == "--log-format") {
      std::string f = value("--log-format");
      if (f == "json") a.log.format = LogFormat::json;
      else if (f == "logfmt") a.log.format = LogFormat::logfmt;
      else usage_error("--log-format is logfmt or json, not '" + f + "'");
    } else if (arg == "--log-level") {
      std::string l = value("--log-level");
      a.log_level_given = true;
      if (l == "debug") a.log.min_level = EF_LOG_DEBUG;
      else if (l == "info") a.log.min_level = EF_LOG_INFO;
      else if (l == "warn") a.log.min_level = EF_LOG_WARN;
      else if (l == "error") a.log.min_level = EF_LOG_ERROR;
      else usage_error("--log-level is debug, info, warn or error, not '" + l + "'");
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg.rfind("--", 0) == 0) {
      usage_error("unknown option " + arg);
    } else if (a.command.empty()) {
      a.command = arg;
      if (arg == "dev") {  // `dev kafka` has options of its own: pass the rest on as they are
        a.positional.assign(argv + i + 1, argv + argc);
        break;
      }
    } else {
      a.positional.push_back(arg);
    }
  }
  if (a.state_dir.empty()) a.state_dir = "edgeflow-state";
  // A blank token would silently turn authentication off: refuse it where it was given.
  if (token_given && a.admin_token.find_first_not_of(" \t\r\n") == std::string::npos)
    usage_error("the admin token (--admin-token-file or $EDGEFLOW_ADMIN_TOKEN) is empty; put a token of at least 16 "
                "characters there (e.g. `openssl rand -hex 24`), or unset it to serve loopback without one");
  if (!a.admin_token.empty() && a.admin_token.size() < 16)
    usage_error("the admin token must have at least 16 characters (e.g. `openssl rand -hex 24`)");
  return a;
}

std::vector<std::string> plugin_dirs(const Args& a) {
  std::vector<std::string> dirs;
  if (a.default_plugins) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      auto dir = exe.parent_path().parent_path() / "lib" / "edgeflow" / "plugins";
      if (std::filesystem::is_directory(dir, ec)) dirs.push_back(dir.string());
    }
  }
  if (const char* p = std::getenv("EDGEFLOW_PLUGIN_PATH")) {
    std::string s = p;
    for (size_t at = 0; at <= s.size();) {
      size_t colon = s.find(':', at);
      if (colon == std::string::npos) colon = s.size();
      if (colon > at) dirs.push_back(s.substr(at, colon - at));
      at = colon + 1;
    }
  }
  dirs.insert(dirs.end(), a.plugin_dirs.begin(), a.plugin_dirs.end());
  return dirs;
}

void print_errors(const host::Diagnostics& diag) {
  for (auto& e : diag.errors) std::fprintf(stderr, "error: %s\n", e.c_str());
  std::fprintf(stderr, "%zu error(s); nothing was started\n", diag.errors.size());
}

std::string option_line(const ef_option_spec& o) {
  std::string s = std::string("  ") + o.name + " (" + host::option_type_name(o.type);
  if (o.type == EF_OPT_ENUM && o.enum_values) s += ": " + std::string(o.enum_values);
  s += ")";
  if (o.flags & EF_OPT_REQUIRED) s += " required";
  else if (o.default_value) s += std::string(" default ") + o.default_value;
  if (o.flags & EF_OPT_SECRET) s += " secret";
  auto num = [](double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d);
    return std::string(buf);
  };
  if (o.flags & EF_OPT_HAS_MIN) s += (o.flags & EF_OPT_MIN_EXCLUSIVE ? " greater than " : " min ") + num(o.min);
  if (o.flags & EF_OPT_HAS_MAX) s += (o.flags & EF_OPT_MAX_EXCLUSIVE ? " less than " : " max ") + num(o.max);
  s += "\n      " + std::string(o.doc ? o.doc : "");
  if (o.example) s += "\n      example: " + std::string(o.name) + ": " + o.example;
  return s + "\n";
}

int cmd_plugins(const Args& a) {
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  if (a.positional.empty()) usage_error("plugins needs 'list' or 'inspect TYPE'");
  if (a.positional[0] == "list") {
    for (auto& c : rt.plugins().components()) {
      std::printf("%-12s %-16s %s %s  %s\n", kind_name(c.component->kind), c.component->type,
                  c.plugin->info->name, c.plugin->info->version, c.plugin->file.c_str());
    }
    return rt.plugins().refusals().empty() ? 0 : 1;
  }
  if (a.positional[0] == "inspect" && a.positional.size() == 2) {
    bool found = false;
    for (auto& c : rt.plugins().components()) {
      if (a.positional[1] != c.component->type) continue;
      found = true;
      std::printf("%s %s — %s\n  plugin %s %s (%s)\noptions:\n", kind_name(c.component->kind),
                  c.component->type, c.component->description ? c.component->description : "",
                  c.plugin->info->name, c.plugin->info->version, c.plugin->file.c_str());
      for (uint32_t i = 0; i < c.component->option_count; ++i)
        std::fputs(option_line(c.component->options[i]).c_str(), stdout);
    }
    if (!found) {
      std::vector<std::string> types;
      for (auto& c : rt.plugins().components()) types.emplace_back(c.component->type);
      std::fprintf(stderr, "edgeflow: no component of type '%s'.%s See `edgeflow plugins list`.\n",
                   a.positional[1].c_str(), host::suggest(a.positional[1], types).c_str());
      return 1;
    }
    return 0;
  }
  usage_error("plugins needs 'list' or 'inspect TYPE'");
}

int cmd_plugin(const Args& a) {
  if (a.positional.size() != 2 || a.positional[0] != "new")
    usage_error("plugin needs 'new NAME --kind source|transformer|sink'");
  if (a.kind.empty()) usage_error("plugin new needs --kind source, transformer or sink");
  // A type the daemon already has would be refused when the new plugin loads: say so now.
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  for (auto& c : rt.plugins().components()) {
    if (a.positional[1] != c.component->type) continue;
    std::fprintf(stderr, "edgeflow: type '%s' is taken: the %s of plugin %s (%s); choose another name\n",
                 c.component->type, kind_name(c.component->kind), c.plugin->info->name, c.plugin->file.c_str());
    return 2;
  }
  ScaffoldResult r = scaffold_plugin(a.positional[1], a.kind, a.dir);
  std::fputs((r.ok ? r.message : "edgeflow: " + r.message + "\n").c_str(), r.ok ? stdout : stderr);
  return r.ok ? 0 : 2;
}

int cmd_validate(const Args& a) {
  if (a.positional.empty()) usage_error("validate needs flow files or directories");
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  host::Diagnostics diag;
  if (!rt.load(a.positional, diag)) {
    print_errors(diag);
    return 1;
  }
  if (a.print)
    for (auto& f : rt.flows()) std::fputs((describe_flow(f->spec()) + "\n").c_str(), stdout);
  std::printf("ok: %zu flow(s) valid\n", rt.flows().size());
  return 0;
}

// Reads a running daemon's tap (Server-Sent Events) and prints each event's JSON on a line.
int cmd_tap(const Args& a) {
  if (a.positional.size() != 1) usage_error("tap needs the name of a running flow");
  std::optional<AdminOptions> o;
  try {
    o = parse_admin_address(a.admin);
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
  if (!o) usage_error("tap needs the admin API, which --admin off turns off");
  std::string path, query;
  Poco::URI::encode(a.positional[0], "/?#", path);
  Poco::URI::encode(a.stage.empty() ? "source" : a.stage, "&=+?#[]", query);
  std::string target = "/flows/" + path + "/tap?stage=" + query + "&rate=" + a.rate;
  try {
    Poco::Net::HTTPClientSession session(o->host, o->port);
    session.setTimeout(Poco::Timespan(60, 0));  // the server says something every 15 s
    Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, target, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!a.admin_token.empty()) req.set("Authorization", "Bearer " + a.admin_token);
    session.sendRequest(req);
    Poco::Net::HTTPResponse res;
    std::istream& in = session.receiveResponse(res);
    std::string line;
    if (res.getStatus() != Poco::Net::HTTPResponse::HTTP_OK) {
      std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::fprintf(stderr, "edgeflow tap: %d %s: %s\n", int(res.getStatus()), res.getReason().c_str(), body.c_str());
      return 1;
    }
    std::string event;
    while (std::getline(in, line)) {
      if (line.rfind("event: ", 0) == 0) {
        event = line.substr(7);
      } else if (line.rfind("data: ", 0) == 0) {
        if (event == "dropped")
          std::fprintf(stderr, "edgeflow tap: %s (events left out: the terminal fell behind)\n", line.c_str() + 6);
        else
          std::printf("%s\n", line.c_str() + 6);
        // A reader that went away (`| head`) ends the tap, also where SIGPIPE is ignored.
        if (std::fflush(stdout) != 0 || std::ferror(stdout)) return 0;
      }
    }
    return 0;
  } catch (const Poco::Exception& e) {
    std::fprintf(stderr, "edgeflow tap: %s:%u: %s (is `edgeflow run` running with its admin API there?)\n",
                 o->host.c_str(), unsigned(o->port), e.displayText().c_str());
    return 1;
  }
}

int cmd_dev(const Args& a) {
  if (a.positional.empty() || a.positional[0] != "kafka")
    usage_error("dev needs 'kafka' (the only development server so far)");
  return dev_kafka(std::vector<std::string>(a.positional.begin() + 1, a.positional.end()));
}

// Writes a whole file; on failure says why on stderr ("edgeflow COMMAND: cannot write PATH: ...").
bool write_file(const char* command, const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  bool ok = f && std::fwrite(text.data(), 1, text.size(), f) == text.size();
  int why = errno;
  if (f && std::fclose(f) != 0 && ok) {
    ok = false;
    why = errno;
  }
  if (!ok) std::fprintf(stderr, "edgeflow %s: cannot write %s: %s\n", command, path.c_str(), std::strerror(why));
  return ok;
}

int cmd_test(Args a) {
  if (a.positional.empty()) a.positional.push_back(".");
  // The engine's own warnings (each dead letter) would bury the outcomes; --log-level shows them.
  if (!a.log_level_given) {
    a.log.min_level = EF_LOG_ERROR;
    configure_logging(a.log);
  }
  host::Diagnostics diag;
  auto files = flowtest::find_test_files(a.positional, diag);
  if (!diag.ok()) {
    for (auto& e : diag.errors) std::fprintf(stderr, "error: %s\n", e.c_str());
    return 2;
  }
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  auto results = flowtest::run_test_files(files, rt.plugins(), a.yaml, [](const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  });
  size_t failed = 0, errors = 0;
  for (auto& r : results) {
    failed += !r.passed && !r.error;
    errors += r.error;
  }
  std::printf("%zu test(s) in %zu file(s): %zu passed, %zu failed, %zu file(s) could not run\n", results.size() - errors,
              files.size(), results.size() - failed - errors, failed, errors);
  if (!a.junit.empty()) {
    std::string xml = flowtest::junit_xml(results);
    if (!write_file("test", a.junit, xml)) return 2;
  }
  return errors ? 2 : failed ? 1 : 0;
}

int cmd_asyncapi(const Args& a) {
  if (a.positional.empty()) usage_error("asyncapi needs flow files or directories");
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  host::Diagnostics diag;
  if (!rt.load(a.positional, diag)) {
    print_errors(diag);
    return 1;
  }
  std::vector<FlowSpec> specs;
  for (auto& f : rt.flows()) specs.push_back(f->spec());
  std::string doc = asyncapi_document(specs);
  if (!a.out_given) {
    std::fputs(doc.c_str(), stdout);
    return 0;
  }
  return write_file("asyncapi", a.out, doc) ? 0 : 1;
}

int cmd_docs(const Args& a) {
  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  if (!rt.plugins().refusals().empty()) {
    for (auto& r : rt.plugins().refusals()) std::fprintf(stderr, "error: %s\n", r.c_str());
    return 1;
  }
  namespace fs = std::filesystem;
  auto files = reference_docs(rt.plugins());
  std::vector<std::string> stale;
  std::error_code ec;
  for (auto& [name, text] : files) {
    std::string path = (fs::path(a.out) / name).string(), have, error;
    bool same = host::read_regular_file(path, 16 << 20, "", have, error) && have == text;
    if (same) continue;
    if (a.check) {
      stale.push_back(path);
      continue;
    }
    fs::create_directories(a.out, ec);
    if (!write_file("docs", path, text)) return 1;
    std::printf("wrote %s\n", path.c_str());
  }
  if (a.check) {
    for (auto& e : fs::directory_iterator(a.out, ec))
      if (e.path().extension() == ".md" && !files.count(e.path().filename().string())) stale.push_back(e.path().string() + " (not generated)");
    for (auto& p : stale) std::fprintf(stderr, "stale: %s\n", p.c_str());
    if (!stale.empty()) {
      std::fprintf(stderr, "the component reference in %s is not what this build generates: run `edgeflow docs --out %s` "
                           "and commit the result\n", a.out.c_str(), a.out.c_str());
      return 1;
    }
    std::printf("ok: %s is current (%zu files)\n", a.out.c_str(), files.size());
  }
  return 0;
}

int cmd_run(const Args& a) {
  if (a.positional.empty()) usage_error("run needs flow files or directories");
  // Signals are taken by this thread alone (sigwait), never by a flow thread mid-batch.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Every open HTTP connection is a descriptor: the soft limit (often 1024) would cap the
  // listeners' max_connections below their defaults.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  Runtime rt(RuntimeOptions{plugin_dirs(a), a.state_dir, a.yaml});
  host::Diagnostics diag;
  if (!rt.load(a.positional, diag)) {
    print_errors(diag);
    return 1;
  }
  rt.unload_unused_plugins();
  std::unique_ptr<AdminServer> admin;
  try {
    if (auto o = parse_admin_address(a.admin)) {
      o->token = a.admin_token;
      admin = std::make_unique<AdminServer>(rt, *o);
      log_info("", "admin", "admin API on http://" + (o->host.find(':') != std::string::npos ? "[" + o->host + "]" : o->host) +
                                ":" + std::to_string(admin->port()) +
                                (o->token.empty() ? " (loopback, no token)" : " (token required)"));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "edgeflow: %s\n", e.what());
    return 1;
  }
  log_info("", "runtime", "starting " + std::to_string(rt.flows().size()) + " flow(s)");
  rt.start();
  // When every flow has ended on its own, wake the signal loop.
  std::thread watcher([&rt] {
    rt.wait();
    kill(getpid(), SIGUSR1);
  });
  // Reloads run on their own thread: a changed flow drains for up to its drain_timeout, and a
  // signal must be heard meanwhile.
  std::mutex reload_mutex;
  std::condition_variable reload_cv;
  bool reload_wanted = false, reloader_done = false;
  std::thread reloader([&] {
    for (;;) {
      {
        std::unique_lock lock(reload_mutex);
        reload_cv.wait(lock, [&] { return reload_wanted || reloader_done; });
        if (reloader_done) return;
        reload_wanted = false;
      }
      ReloadResult r = rt.reload();
      for (auto& e : r.errors) log_error("", "runtime", "reload refused, nothing changed: " + e);
    }
  });
  // A changed flow file reloads as SIGHUP does.
  std::unique_ptr<FileWatch> flow_files;
  try {
    flow_files = std::make_unique<FileWatch>(a.positional, [] { kill(getpid(), SIGHUP); });
  } catch (const std::exception& e) {
    log_warn("", "runtime", std::string(e.what()) + "; reload with SIGHUP or POST /reload");
  }
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) break;
    if (sig == SIGHUP) {
      log_info("", "runtime", "reloading the flow files");
      {
        std::lock_guard lock(reload_mutex);
        reload_wanted = true;
      }
      reload_cv.notify_all();
      continue;
    }
    log_info("", "runtime", std::string(strsignal(sig)) + ": stopping, draining in-flight messages" );
    rt.request_stop();
  }
  flow_files.reset();
  {
    std::lock_guard lock(reload_mutex);
    reloader_done = true;
  }
  reload_cv.notify_all();
  reloader.join();
  watcher.join();
  if (admin) admin->stop();
  for (auto& f : rt.flows()) log_summary(*f);
  return rt.exit_code();
}

// librdkafka allocates and frees its fetch, decompression and produce buffers (1 to 16 MiB)
// many times a second. With glibc's defaults, the larger ones get a mapping of their own and a
// freed heap top over twice the adaptive threshold goes back to the kernel, so the same memory
// was faulted in again and again: 15 to 20% of a Kafka flow's CPU (perf, bench/kafka). Kept in
// the heap instead; freed memory up to 64 MiB per arena stays with the process. Malloc settings
// the operator gives in the environment win.
void keep_buffers_in_heap() {
#ifdef __GLIBC__
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if ((tunables && std::strstr(tunables, "glibc.malloc.")) || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_")) {
    log(EF_LOG_DEBUG, "", "", "malloc: left to the settings in the environment");
    return;
  }
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's ceiling for it on 64-bit
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  log(EF_LOG_DEBUG, "", "", "malloc: buffers up to 32 MiB stay in the heap, which keeps up to 64 MiB free per arena");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  configure_logging(a.log);
  if (a.command == "run") {
    keep_buffers_in_heap();
    return cmd_run(a);
  }
  if (a.command == "validate") return cmd_validate(a);
  if (a.command == "plugins") return cmd_plugins(a);
  if (a.command == "plugin") return cmd_plugin(a);
  if (a.command == "dev") return cmd_dev(a);
  if (a.command == "tap") return cmd_tap(a);
  if (a.command == "test") return cmd_test(a);
  if (a.command == "docs") return cmd_docs(a);
  if (a.command == "asyncapi") return cmd_asyncapi(a);
  if (a.command == "reload") {
    AdminReply r = admin_request(a.admin, a.admin_token, "POST", "/reload", 15 * 60);
    if (r.status == 0) {
      std::fprintf(stderr, "edgeflow reload: %s\n", r.error.c_str());
      return 1;
    }
    std::printf("%s\n", r.body.c_str());
    return r.status == 200 ? 0 : 1;
  }
  if (a.command == "cdc") {
    if (a.positional.size() < 3 || a.positional[0] != "snapshot") usage_error("cdc needs 'snapshot FLOW TABLE...'");
    std::string body = R"({"action":"snapshot","tables":[)";
    for (size_t i = 2; i < a.positional.size(); ++i) {
      rapidjson::StringBuffer s;
      rapidjson::Writer<rapidjson::StringBuffer> w(s);
      w.String(a.positional[i].data(), rapidjson::SizeType(a.positional[i].size()));
      body += (i > 2 ? "," : "") + std::string(s.GetString(), s.GetSize());
    }
    body += "]}";
    std::string flow = a.positional[1];
    if (flow.find_first_of("/?#% ") != std::string::npos) usage_error("'" + flow + "' is not a flow name");
    AdminReply r = admin_request(a.admin, a.admin_token, "POST", "/flows/" + flow + "/signal", 60, body);
    if (r.status == 0) {
      std::fprintf(stderr, "edgeflow cdc snapshot: %s\n", r.error.c_str());
      return 1;
    }
    std::printf("%s\n", r.body.c_str());
    return r.status == 200 ? 0 : 1;
  }
  if (a.command == "dlq")
    return cmd_dlq(DlqArgs{a.positional, a.dlq_filters, a.state_dir, a.admin, a.admin_token, a.from, a.timeout, a.json, a.all});
  if (a.command == "version") {
    std::printf("edgeflow %s (release); plugin ABI %u.%u\n", EDGEFLOW_VERSION, EF_ABI_MAJOR, EF_ABI_MINOR);
    return 0;
  }
  if (a.command.empty()) usage_error("no command given");
  usage_error("unknown command '" + a.command + "'");
}
