#!/usr/bin/env bash
# Best effort: install Debian's headless Chromium for the report-rendering test.
# The test is skipped where Chromium cannot be had, so failure here is not fatal.
command -v chromium >/dev/null 2>&1 && exit 0
[ "$(id -u)" = 0 ] || exit 0
command -v apt-get >/dev/null 2>&1 || exit 0
{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
  >/dev/null 2>&1 || echo "chromium not installed; the report-rendering test will be skipped"
