// The HTTP plugin: a webhook source (several flows may share one listener by path) and a
// webhook/REST sink, on Poco.
#include "sink.hpp"
#include "source.hpp"

EDGEFLOW_PLUGIN("http", "0.1.0", edgeflow::http::HttpSink, edgeflow::http::HttpSource)
