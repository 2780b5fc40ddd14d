// The peer bench/config measures flow loading against: yaml-cpp's LoadFile, nothing else.
#include <yaml-cpp/yaml.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  YAML::Node n = YAML::LoadFile(argv[1]);
  std::printf("%zu top-level keys\n", n.size());
  return 0;
}
