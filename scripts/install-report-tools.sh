#!/usr/bin/env bash
# Tools the reports need beyond Python, installed only when missing (Debian/Ubuntu, as root or with sudo):
# - Chromium, the distribution's own build: the report tests open every report in a real headless browser
#   (Playwright drives /usr/bin/chromium; no browser is ever downloaded).
# - The Allure 2 command line (npm `allure-commandline`) and Java for `restoredrill report --allure`.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
command -v java >/dev/null 2>&1 || packages+=(default-jre-headless)
command -v npm >/dev/null 2>&1 || packages+=(npm)

if [ "${#packages[@]}" -gt 0 ]; then
  echo "report tools: installing ${packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

if ! command -v allure >/dev/null 2>&1; then
  echo "report tools: installing the Allure 2 command line (npm allure-commandline)"
  $SUDO npm install --global --no-fund --no-audit --loglevel=error allure-commandline@2 >/dev/null
fi

echo "report tools: chromium $([ -x /usr/bin/chromium ] && echo present), allure $(allure --version 2>/dev/null || echo missing)"
