#!/usr/bin/env bash
# Headless Chromium for the browser tests, from the system's packages (Playwright drives /usr/bin/chromium;
# it never downloads a browser of its own).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
echo "browser: installing chromium and chromium-driver from the system's packages" >&2
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
