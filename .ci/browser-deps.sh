#!/usr/bin/env bash
# Headless Chromium and its WebDriver for tests/e2e/test_browser.py and docs/make_screenshot.py, from
# Debian's packages (Selenium is given their paths and downloads nothing). Idempotent: installs only what
# is missing. The Python side is in requirements.txt and requirements-dev.txt.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

if installed chromium && installed chromium-driver; then
  echo "chromium and chromium-driver already installed"
else
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi
chromium --version 2>/dev/null
chromedriver --version
