#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed (the MLflow UI test drives it). Idempotent: does nothing
# when `chromium` is already on PATH. Installing needs root (or passwordless sudo) and the Debian package mirror.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "ensure_chromium: chromium is missing and installing it needs root: apt-get install -y chromium" >&2
  exit 1
fi

echo "ensure_chromium: installing chromium (Debian package)" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { echo "ensure_chromium: chromium still not on PATH after install" >&2; exit 1; }
echo "ensure_chromium: $(chromium --version 2>/dev/null)" >&2
