#include "admin_client.hpp"

#include "admin.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>

#include <iterator>

namespace edgeflow {

AdminReply admin_request(const std::string& admin, const std::string& token, const std::string& method,
                         const std::string& target, int timeout_s, const std::string& body) {
  AdminReply r;
  std::optional<AdminOptions> o;
  try {
    o = parse_admin_address(admin);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  if (!o) {
    r.error = "this needs the running daemon's admin API, which --admin off turns off";
    return r;
  }
  try {
    Poco::Net::HTTPClientSession session(o->host, o->port);
    session.setTimeout(Poco::Timespan(timeout_s, 0));
    Poco::Net::HTTPRequest req(method, target, Poco::Net::HTTPMessage::HTTP_1_1);
    if (method == Poco::Net::HTTPRequest::HTTP_POST) {
      req.setContentType("application/json");
      req.setContentLength(std::streamsize(body.size()));
    }
    if (!token.empty()) req.set("Authorization", "Bearer " + token);
    session.sendRequest(req) << body;
    Poco::Net::HTTPResponse res;
    std::istream& in = session.receiveResponse(res);
    r.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    r.status = int(res.getStatus());
  } catch (const Poco::Exception& e) {
    r.error = o->host + ":" + std::to_string(o->port) + ": " + e.displayText() +
              " (is `edgeflow run` running with its admin API there?)";
  }
  return r;
}

}  // namespace edgeflow
