# shellcheck shell=bash
# Configure-and-build shared by scripts/quickstart.sh and scripts/test.sh.

step() { printf '\n==> %s\n' "$*"; }

# edgeflow_build BUILD_DIR JOBS CMAKE_ARGS...
# Configures BUILD_DIR (Ninja on a fresh directory; ccache, when installed, is picked up by
# CMakeLists.txt) and builds it, saying how long the build took.
edgeflow_build() {
  local build_dir=$1 jobs=$2 generator=() started
  shift 2
  [[ -f "$build_dir/CMakeCache.txt" ]] || generator=(-G Ninja)
  if command -v ccache >/dev/null 2>&1; then
    echo "ccache: $(command -v ccache) (CMakeLists.txt uses it as the compiler launcher)"
  fi
  cmake -S . -B "$build_dir" "${generator[@]}" "$@"
  step "build (-j$jobs)"
  started=$SECONDS
  cmake --build "$build_dir" -j "$jobs"
  echo "built in $((SECONDS - started))s"
}
