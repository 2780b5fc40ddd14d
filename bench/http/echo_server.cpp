// The peer bench/http measures the webhook source against: a minimal Poco HTTPServer (thread per
// keep-alive connection, the webhook source's server until it got its own), which reads the
// request body and sends it back. Usage: echo_server <port> <threads>; runs until SIGTERM.
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <csignal>
#include <cstdio>
#include <string>

namespace {

class Echo : public Poco::Net::HTTPRequestHandler {
 public:
  void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
    std::string body;
    Poco::StreamCopier::copyToString(req.stream(), body);
    resp.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
    resp.setContentType("application/json");
    resp.setContentLength(std::streamsize(body.size()));
    resp.send().write(body.data(), std::streamsize(body.size()));
  }
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override { return new Echo; }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: echo_server <port> <threads>\n");
    return 2;
  }
  int threads = std::stoi(argv[2]);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts: only sigwait takes them
  Poco::ThreadPool pool(2, threads + 1, 60);
  auto params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(threads);
  params->setMaxQueued(1024);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(15, 0));
  params->setMaxKeepAliveRequests(0);
  Poco::Net::HTTPServer server(new Factory, pool, Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", Poco::UInt16(std::stoi(argv[1]))), 256), params);
  server.start();
  int sig = 0;
  sigwait(&set, &sig);
  server.stopAll(true);
  pool.joinAll();
  return 0;
}
