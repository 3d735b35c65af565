#!/usr/bin/env bash
# Debian chromium for the browser checks of bench/ (test/bench/browser.test.ts drives it with playwright-core).
# Idempotent; .ci/run calls it before `npm test` (the test also calls it when chromium is missing).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
export DEBIAN_FRONTEND=noninteractive
sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
sudo_ apt-get update -qq
sudo_ apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
command -v chromium
