#!/usr/bin/env bash
# Builds llama.cpp's native llama-bench from the source node-llama-cpp ships (a git bundle in its package), into
# bench/peers/.llama.cpp (gitignored). CPU only, tuned for this machine (GGML_NATIVE). Needs cmake + a C++ compiler.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bundle="$here/node_modules/node-llama-cpp/llama/gitRelease.bundle"
src="$here/.llama.cpp/src"
build="$here/.llama.cpp/build"
[ -f "$bundle" ] || { echo "no $bundle: run bench/peers/setup.sh first" >&2; exit 2; }
if [ ! -d "$src/.git" ]; then
  mkdir -p "$here/.llama.cpp"
  git clone --quiet "$bundle" "$src"
fi
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
  -DGGML_OPENMP=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$build" --target llama-bench -j "${JOBS:-2}"
echo "$build/bin/llama-bench"
