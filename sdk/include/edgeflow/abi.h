/*
 * edgeflow plugin ABI — the only interface that crosses a shared-library boundary.
 *
 * C11, depends only on <stdint.h> and <stddef.h>. Every struct starts with
 * `uint32_t struct_size` so it can grow by appending fields; readers check the size before
 * touching a field added after ABI 1.0. No C++ type, exception or allocation crosses it.
 *
 * Naming: ef_* types, ef_host_* callbacks the host provides (grouped in ef_host_api), hooks the
 * plugin implements live in ef_component. Ownership and lifetime are written beside each pointer.
 *
 * Threading: a flow has two threads. A source's run() runs on the flow's source thread, and its
 * on_ack is called there from inside emit()/poll(), or after run() has returned while the flow
 * drains: never two of its hooks at once, so a source needs no locking for its ack bookkeeping.
 * create/start/stop/destroy run on the flow's pipeline thread. Transformer hooks and a sink's
 * write/flush run on the pipeline thread, or on the source thread for a batch the flow runs
 * there (a small batch, a cheap source or pipeline): one at a time either way. A sink's ack() calls may
 * come from any thread. A source's signal() (ABI 1.5) comes from another thread while run() runs.
 *
 * A change to this file changes the ABI: tests/unit/abi_hash pins its hash.
 */
#ifndef EDGEFLOW_ABI_H
#define EDGEFLOW_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EF_ABI_MAJOR 1u
#define EF_ABI_MINOR 5u

#if defined(_WIN32)
#define EF_EXPORT __declspec(dllexport)
#else
#define EF_EXPORT __attribute__((visibility("default")))
#endif

/* The one symbol a plugin exports. */
#define EF_ENTRY_SYMBOL "edgeflow_plugin_init"

/* Result of a hook or host call. */
typedef enum ef_status {
  EF_OK = 0,
  EF_ERROR = 1,    /* failed; the reason was passed to ef_host_api.fail() */
  EF_BUSY = 2,     /* emit: in-flight bound reached and timeout elapsed; nothing was taken */
  EF_STOPPING = 3  /* emit/poll: the flow is stopping; finish up and return from run */
} ef_status;

/* How one message ended at one sink, and (merged, worst wins) at the source. */
typedef enum ef_ack_status {
  EF_ACK_DELIVERED = 0, /* written, or durably buffered, by every sink it was routed to */
  EF_ACK_RETRY = 1,     /* not delivered yet: do not commit, expect redelivery */
  EF_ACK_REJECTED = 2   /* permanently refused; it is in the dead-letter destination */
} ef_ack_status;

typedef enum ef_kind {
  EF_KIND_SOURCE = 1,
  EF_KIND_TRANSFORMER = 2,
  EF_KIND_SINK = 3
} ef_kind;

typedef enum ef_log_level {
  EF_LOG_DEBUG = 0,
  EF_LOG_INFO = 1,
  EF_LOG_WARN = 2,
  EF_LOG_ERROR = 3
} ef_log_level;

/* What a plugin metric is (ABI 1.1). */
typedef enum ef_metric_kind {
  EF_METRIC_GAUGE = 0,  /* a value that goes up and down: the last one set counts */
  EF_METRIC_COUNTER = 1 /* a running total the plugin only raises (events read, bytes sent) */
} ef_metric_kind;

typedef enum ef_type {
  EF_TYPE_NULL = 0,
  EF_TYPE_BOOL = 1,
  EF_TYPE_INT = 2,    /* fits int64 */
  EF_TYPE_DOUBLE = 3, /* any other number */
  EF_TYPE_STRING = 4,
  EF_TYPE_ARRAY = 5,
  EF_TYPE_OBJECT = 6
} ef_type;

/* Opaque host objects. */
typedef struct ef_ctx ef_ctx;         /* one plugin instance in one flow; host-owned, lives from
                                         create until destroy returns */
typedef struct ef_message ef_message; /* host-owned message */
typedef struct ef_batch ef_batch;     /* host-owned, valid only during the hook it is passed to */
typedef struct ef_value ef_value;     /* a node of a host-owned JSON document; valid until that
                                         document's structure changes, its message is released
                                         or the sink write() it was read in returns */

/* Option types a plugin can declare. The host converts and checks config before create(). */
typedef enum ef_option_type {
  EF_OPT_STRING = 0,
  EF_OPT_INT = 1,
  EF_OPT_DOUBLE = 2,
  EF_OPT_BOOL = 3,
  EF_OPT_DURATION = 4, /* "250ms", "5s", "2m", "1h" or a number of ms; given as int ms */
  EF_OPT_SIZE = 5,     /* "64KiB", "10MB" or a number of bytes; given as int bytes */
  EF_OPT_ENUM = 6,     /* string, one of enum_values */
  EF_OPT_STRING_LIST = 7,
  EF_OPT_ANY = 8       /* any YAML value, given as JSON (maps, lists of maps...) */
} ef_option_type;

enum {
  EF_OPT_REQUIRED = 1u << 0,
  EF_OPT_SECRET = 1u << 1,    /* redacted wherever config is printed or logged */
  EF_OPT_HAS_MIN = 1u << 2,
  EF_OPT_HAS_MAX = 1u << 3,
  EF_OPT_MIN_EXCLUSIVE = 1u << 4, /* with HAS_MIN: the value must be greater than min (ABI 1.4) */
  EF_OPT_MAX_EXCLUSIVE = 1u << 5  /* with HAS_MAX: the value must be less than max (ABI 1.4) */
};

typedef struct ef_option_spec {
  uint32_t struct_size;
  const char* name;          /* plugin-owned, static */
  uint32_t type;             /* ef_option_type */
  uint32_t flags;            /* EF_OPT_* */
  const char* default_value; /* YAML text, or NULL for none; plugin-owned, static */
  double min;                /* with EF_OPT_HAS_MIN, for numbers, durations and sizes */
  double max;                /* with EF_OPT_HAS_MAX */
  const char* enum_values;   /* "a|b|c" for EF_OPT_ENUM, else NULL; plugin-owned, static */
  const char* doc;           /* one sentence; plugin-owned, static */
  const char* example;       /* YAML text; plugin-owned, static, may be NULL */
} ef_option_spec;

/* One acknowledgement delivered to a source: the token it gave the message, and the status. */
typedef struct ef_ack {
  uint32_t struct_size;
  uint32_t status; /* ef_ack_status */
  uint64_t token;
} ef_ack;

/*
 * Hooks of one component (a source, transformer or sink type). `self` is what create() stored.
 * Every hook returning ef_status reports failure by calling host->fail(ctx, ...) and returning
 * EF_ERROR. Unused hooks are NULL.
 */
typedef struct ef_component {
  uint32_t struct_size;
  uint32_t kind;            /* ef_kind */
  const char* type;         /* name used in flow YAML `type:`; plugin-owned, static */
  const char* description;  /* plugin-owned, static */
  const ef_option_spec* options; /* plugin-owned, static array */
  uint32_t option_count;

  /* Parse config only; do not connect anywhere (validate runs it). `config` is a JSON object
     with every declared option present (defaults filled in), valid during the call only. */
  ef_status (*create)(ef_ctx* ctx, const ef_value* config, void** self);
  /* Connect / open. Called once before the first run/transform/write. */
  ef_status (*start)(void* self);
  /* Release connections; called once after the last hook, also after a failed start. A sink
     is stopped after the drain offered flush() until every message was acked or drain_timeout
     passed; delivered acks it sends during stop() still count. Whatever it holds unacked when
     stop() returns counts as not delivered: the source hears EF_ACK_RETRY, commits nothing past
     it, and reads it again after a restart. No ack() once stop() has returned (join the
     threads that do). */
  void (*stop)(void* self);
  void (*destroy)(void* self);

  /* Source: read and emit until emit/poll answers EF_STOPPING or the input ends, then return
     EF_OK. Returning EF_ERROR fails the flow (it is restarted with backoff). */
  ef_status (*run)(void* self);
  /* Source: acks for emitted messages, in any order, exactly once per message. Called on run()'s
     thread inside emit()/poll() (never before emit() has taken the batch, unless it waits for
     room), and after run() returns while the flow drains. */
  void (*on_ack)(void* self, const ef_ack* acks, size_t count);

  /* Transformer: change the batch in place (see the batch_* host calls). */
  ef_status (*transform)(void* self, ef_batch* batch);

  /* Sink: take the batch; call host->ack() once per message now or later (any thread). The
     messages and their payload bytes stay valid until acked; their documents may be let go
     when write() returns (asked for again, they are parsed again). EF_ERROR fails the flow. */
  ef_status (*write)(void* self, ef_batch* batch);
  /* Sink: push out anything buffered; acks may follow, from any thread. Called with 0 (start,
     do not wait) once the sink's flush_interval passed since its first unflushed write and
     whenever the flow waits for room; with the time left while the flow drains. */
  ef_status (*flush)(void* self, int32_t timeout_ms);

  /* ABI 1.5 (read only when struct_size covers it). Source, optional: a command from the
     operator (`POST /flows/NAME/signal`), e.g. {"action":"snapshot","tables":["public.orders"]}.
     Called on another thread while run() runs, never before start() or after stop() begins:
     check the command, queue it for run() and return; EF_ERROR plus host->fail(ctx, reason)
     refuses it without failing the flow. `command` is a JSON document valid during the call. */
  ef_status (*signal)(void* self, const ef_value* command);
} ef_component;

typedef struct ef_plugin_info {
  uint32_t struct_size;
  uint32_t abi_major;      /* EF_ABI_MAJOR the plugin was built with */
  uint32_t abi_minor;      /* EF_ABI_MINOR the plugin was built with */
  const char* name;        /* plugin-owned, static */
  const char* version;     /* plugin-owned, static */
  const ef_component* components; /* plugin-owned, static array */
  uint32_t component_count;
} ef_plugin_info;

typedef struct ef_header_view {
  const char* name; /* host-owned, valid while the message is unchanged */
  size_t name_len;
  const char* value;
  size_t value_len;
} ef_header_view;

/*
 * Callbacks the host provides. The table is host-owned and lives as long as the plugin is
 * loaded. Strings passed in are copied by the host unless stated; strings returned are
 * host-owned and valid while the object they came from is unchanged.
 */
typedef struct ef_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;

  /* --- diagnostics --- */
  void (*log)(ef_ctx* ctx, uint32_t level, const char* text, size_t len);
  /* Records why the current hook failed. ctx may be NULL inside edgeflow_plugin_init. */
  void (*fail)(ef_ctx* ctx, const char* reason, size_t len);
  /* "file:line:col" of a config key path ("routes[2].when") of this instance, or of the
     instance itself for ""; host-owned, valid until destroy. */
  const char* (*config_where)(ef_ctx* ctx, const char* key_path);
  /* The instance's name: "<flow>/source", "<flow>/steps[0]:map", "<flow>/sinks.out". */
  const char* (*instance_name)(ef_ctx* ctx);
  /* Where the plugin may keep state (a directory path, created), NULL if none configured. */
  const char* (*state_dir)(ef_ctx* ctx);

  /* --- messages --- */
  /* A new empty message owned by the caller until emitted or freed. */
  ef_message* (*message_new)(ef_ctx* ctx);
  void (*message_free)(ef_ctx* ctx, ef_message* msg);
  /* Token handed back in ef_ack for this message (sources). */
  void (*message_set_token)(ef_message* msg, uint64_t token);
  /* Payload bytes; serialises the document first if it changed. */
  const char* (*message_payload)(ef_message* msg, size_t* len);
  void (*message_set_payload)(ef_message* msg, const char* data, size_t len);
  const char* (*message_key)(const ef_message* msg, size_t* len);
  void (*message_set_key)(ef_message* msg, const char* data, size_t len);
  const char* (*message_content_type)(const ef_message* msg, size_t* len);
  void (*message_set_content_type)(ef_message* msg, const char* data, size_t len);
  int64_t (*message_timestamp_ms)(const ef_message* msg);
  void (*message_set_timestamp_ms)(ef_message* msg, int64_t ts);
  size_t (*message_header_count)(const ef_message* msg);
  ef_header_view (*message_header_at)(const ef_message* msg, size_t index);
  /* First header of that name, or NULL. */
  const char* (*message_header)(const ef_message* msg, const char* name, size_t name_len,
                                size_t* value_len);
  /* Replaces every header of that name. */
  void (*message_set_header)(ef_message* msg, const char* name, size_t name_len,
                             const char* value, size_t value_len);
  void (*message_remove_header)(ef_message* msg, const char* name, size_t name_len);
  /* Source metadata (topic, partition, offset, lsn...), read as meta.<name> by expressions. */
  const char* (*message_meta)(const ef_message* msg, const char* name, size_t name_len,
                              size_t* value_len);
  void (*message_set_meta)(ef_message* msg, const char* name, size_t name_len,
                           const char* value, size_t value_len);

  /* --- the structured document (JSON) of a message --- */
  /* Root of the document, parsing the payload on first use; NULL if the payload is not I-JSON
     (RFC 7493: JSON, UTF-8, no member name twice in an object); message_doc_error says why. */
  ef_value* (*message_doc)(ef_message* msg);
  /* Replaces the document with an empty object and returns its root. */
  ef_value* (*message_doc_reset)(ef_message* msg);
  /* Path lookup: "after.items[0].sku". NULL when absent. */
  ef_value* (*doc_get_path)(ef_message* msg, const char* path, size_t len);
  /* Creates missing objects along the path; returns the (possibly new, null) leaf. */
  ef_value* (*doc_set_path)(ef_message* msg, const char* path, size_t len);
  int (*doc_remove_path)(ef_message* msg, const char* path, size_t len);

  uint32_t (*value_type)(const ef_value* v);
  int (*value_bool)(const ef_value* v);
  int64_t (*value_int)(const ef_value* v);
  double (*value_double)(const ef_value* v); /* ints convert */
  const char* (*value_string)(const ef_value* v, size_t* len);
  size_t (*value_size)(const ef_value* v); /* array elements or object members */
  ef_value* (*value_at)(const ef_value* array, size_t index);
  /* i-th member of an object; *name is valid like the value. */
  ef_value* (*value_member_at)(const ef_value* object, size_t index, const char** name,
                               size_t* name_len);
  ef_value* (*value_find)(const ef_value* object, const char* name, size_t len);
  /* Mutators take the message whose document holds v (its allocator). */
  void (*value_set_null)(ef_message* msg, ef_value* v);
  void (*value_set_bool)(ef_message* msg, ef_value* v, int b);
  void (*value_set_int)(ef_message* msg, ef_value* v, int64_t i);
  /* NaN and infinity have no JSON form: they set null. */
  void (*value_set_double)(ef_message* msg, ef_value* v, double d);
  void (*value_set_string)(ef_message* msg, ef_value* v, const char* s, size_t len);
  void (*value_set_object)(ef_message* msg, ef_value* v);
  void (*value_set_array)(ef_message* msg, ef_value* v);
  /* Member of an object, created (null) when absent. */
  ef_value* (*object_put)(ef_message* msg, ef_value* object, const char* name, size_t len);
  int (*object_remove)(ef_message* msg, ef_value* object, const char* name, size_t len);
  /* Appends a null element and returns it. */
  ef_value* (*array_push)(ef_message* msg, ef_value* array);
  /* Deep copy of src (from any document, or from a config value) into dst. */
  void (*value_copy)(ef_message* msg, ef_value* dst, const ef_value* src);

  /* --- sources --- */
  /* Hands messages to the flow (ownership passes to the host on EF_OK). Blocks up to
     timeout_ms (-1: until admitted or stopping) while the in-flight bound is reached, and
     delivers pending acks through on_ack meanwhile and once the batch is taken. */
  ef_status (*emit)(ef_ctx* ctx, ef_message* const* msgs, size_t count, int32_t timeout_ms);
  /* Delivers pending acks and waits up to timeout_ms for more; EF_STOPPING once the flow is
     asked to stop. A source blocked in its own I/O should call it at least every 100 ms. */
  ef_status (*poll)(ef_ctx* ctx, int32_t timeout_ms);
  /* Messages emitted and not yet acked. */
  size_t (*in_flight)(ef_ctx* ctx);

  /* --- batches (transformers and sinks) --- */
  size_t (*batch_size)(const ef_batch* batch);
  ef_message* (*batch_at)(const ef_batch* batch, size_t index);
  /* Transformers: drop a message; it counts as delivered. It is only marked during the hook
     (indexes stay stable) and leaves the batch when the hook returns. */
  void (*batch_drop)(ef_batch* batch, size_t index);
  /* Transformers: send a message to the dead-letter destination with reason (copied); marked
     like batch_drop. */
  void (*batch_reject)(ef_batch* batch, size_t index, const char* reason, size_t len);
  /* Transformers: a copy of the message at index (payload, document, headers, meta, routes),
     sharing its ack, appended at the end of the batch and returned for editing. */
  ef_message* (*batch_split)(ef_batch* batch, size_t index);
  /* The flow's sinks, by index; names are host-owned. Resolve names once, in create(). */
  size_t (*sink_count)(ef_ctx* ctx);
  const char* (*sink_name)(ef_ctx* ctx, size_t index);
  /* Index of the named sink, or -1. */
  int32_t (*sink_index)(ef_ctx* ctx, const char* name, size_t len);
  /* Transformers: send the message only to the given sinks (call once per sink). A message
     never routed goes to every sink. At most 64 sinks per flow. */
  void (*message_route)(ef_message* msg, uint32_t sink_index);
  void (*message_clear_routes)(ef_message* msg); /* back to "every sink" */

  /* --- sinks --- */
  /* Resolves one message at this sink; reason (may be NULL) is copied. Any thread. */
  void (*ack)(ef_ctx* ctx, ef_message* msg, uint32_t status, const char* reason, size_t len);
  /* Resolves every message of the batch with one status (flow thread, during write). */
  void (*ack_batch)(ef_ctx* ctx, ef_batch* batch, uint32_t status, const char* reason,
                    size_t len);

  /* --- metrics (ABI 1.1) --- */
  /* Sets a number the runtime exports for this instance (name: [a-z0-9_], 1 to 64 bytes,
     copied; kind: ef_metric_kind). It outlives a restart of the flow. Any thread. */
  void (*metric_set)(ef_ctx* ctx, const char* name, size_t len, uint32_t kind, double value);

  /* --- documents (ABI 1.2) --- */
  /* Why message_doc() returned NULL for this message ("payload is not JSON at byte 3: ..."), or
     NULL after a parse that succeeded; host-owned, valid until the message changes. Check
     struct_size before calling: an ABI 1.1 host has no such member. */
  const char* (*message_doc_error)(ef_message* msg, size_t* len);

  /* --- exact numbers (ABI 1.3) --- */
  /* A number a double cannot carry exactly (an integer past 64 bits, a decimal with more digits
     than a double keeps) is kept as the text that arrived: value_type says EF_TYPE_DOUBLE,
     value_double gives the nearest double, and the document is written with the text. This
     returns that text, or NULL for any other value; valid like the value. */
  const char* (*value_number_text)(const ef_value* v, size_t* len);
  /* Sets v to the JSON number written in text (RFC 8259 grammar), kept exactly; returns 0 and
     leaves v alone if the text is not a JSON number. */
  int (*value_set_number_text)(ef_message* msg, ef_value* v, const char* text, size_t len);

  /* --- config errors (ABI 1.4) --- */
  /* The full key path in the flow file of a config key path of this instance: "field" of the
     first step is "steps[0].field"; "" gives the instance's own ("sinks.out"). Host-owned,
     valid until the next call on this instance's thread. */
  const char* (*config_key)(ef_ctx* ctx, const char* key_path);
} ef_host_api;

/* The one exported entry point. Returns a static descriptor, or NULL after host->fail(NULL,..).
   host_abi_major/minor are the host's; a plugin may refuse an older host minor. */
typedef const ef_plugin_info* (*ef_plugin_init_fn)(const ef_host_api* host,
                                                   uint32_t host_abi_major,
                                                   uint32_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* EDGEFLOW_ABI_H */
