#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; `playwright install` downloads
# nothing here). Installs the package if missing; prints the browser's path.
set -euo pipefail
if ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium package" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >&2
fi
command -v chromium
