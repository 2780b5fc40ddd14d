// The MQTT plugin: a subscribing source and a publishing sink on edgeflow's own MQTT 3.1.1/5 client.
#include "sink.hpp"
#include "source.hpp"

EDGEFLOW_PLUGIN("mqtt", "0.1.0", edgeflow::mqtt::MqttSink, edgeflow::mqtt::MqttSource)
