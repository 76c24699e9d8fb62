#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium and its WebDriver are installed (the MLflow UI test drives chromium;
# the human-eval page test drives it through chromedriver with Selenium). Idempotent: does nothing when `chromium`
# and `chromedriver` are already on PATH. Installing needs root (or passwordless sudo) and the Debian package mirror.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "ensure_chromium: chromium/chromedriver missing and installing needs root: apt-get install -y ${PACKAGES[*]}" >&2
  exit 1
fi

echo "ensure_chromium: installing ${PACKAGES[*]} (Debian packages)" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ensure_chromium: $tool still not on PATH after install" >&2; exit 1; }
done
echo "ensure_chromium: $(chromium --version 2>/dev/null); $(chromedriver --version 2>/dev/null)" >&2
