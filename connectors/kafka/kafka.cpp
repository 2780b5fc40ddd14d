// The Kafka plugin: a consumer-group source and an idempotent producer sink (librdkafka).
#include "sink.hpp"
#include "source.hpp"

EDGEFLOW_PLUGIN("kafka", "0.1.0", edgeflow::kafka::KafkaSink, edgeflow::kafka::KafkaSource)
