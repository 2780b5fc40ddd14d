// `edgeflow dev kafka`: librdkafka's in-memory mock cluster in the foreground, for trying flows
// against Kafka without a Kafka. Development only: see dev_kafka.cpp and docs/operator-guide.md.
#pragma once

#include <string>
#include <vector>

namespace edgeflow {

// The usage text of `edgeflow dev kafka` (also part of `edgeflow --help`).
extern const char* const kDevKafkaUsage;

// Runs `edgeflow dev kafka` with `args` (what follows "kafka") until SIGINT or SIGTERM.
// Returns the exit code: 0 after a signal, 1 when the cluster or the port cannot be set up,
// 2 for a usage error (the message and the usage on stderr).
int dev_kafka(const std::vector<std::string>& args);

}  // namespace edgeflow
