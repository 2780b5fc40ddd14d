// `edgeflow asyncapi`: the flows described as an AsyncAPI 3.0 document, for the catalog an
// organisation keeps of its events. Servers are the Kafka and MQTT brokers and the HTTP listeners
// and endpoints the flows use; channels their topics (a topic template's ${...} parts become
// channel parameters) and webhook paths; operations what each flow receives and sends; messages
// carry the payload schema where the flow fixes it (a validate step's schema, or the shape a map
// step with `unmapped: drop` builds). Option values marked secret never appear.
#pragma once

#include "flow_config.hpp"

#include <string>
#include <vector>

namespace edgeflow {

// The document, as JSON text.
std::string asyncapi_document(const std::vector<FlowSpec>& flows);

}  // namespace edgeflow
