#!/usr/bin/env bash
# Installs what the browser and Node interop tests need beyond the Python packages:
#   - Debian's chromium (driven headless by Playwright's Python package, see
#     tests/browser/), plus fonts so the page (emoji included) renders in screenshots;
#   - Node's `ws`, pinned by tests/node/package-lock.json (`npm ci`), and Debian's
#     nodejs and npm first if the machine has no node.
# Idempotent: what is already there is not installed again.
# With CI=true any failure is fatal; elsewhere it is reported and the script goes on
# (the tests that need the missing piece then fail with a message naming it).
set -uo pipefail
cd "$(dirname "$0")/.."

STRICT=0
if [ "${CI:-}" = "true" ]; then
  STRICT=1
fi
FAILED=()

fail() {
  echo "install-system-deps: ERROR: $*" >&2
  FAILED+=("$*")
}

# --- Debian packages ------------------------------------------------------------------
APT_PACKAGES=(chromium fonts-dejavu-core fonts-noto-color-emoji)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)  # Debian's Node.js (>= 18) is enough for ws
fi
missing=()
for package in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo -n)
    else
      fail "not root and no sudo: cannot apt-get install ${missing[*]}"
    fi
  fi
  if [ "${#FAILED[@]}" -eq 0 ]; then
    echo "install-system-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get update -qq; then
      fail "apt-get update failed"
    elif ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
      fail "apt-get install ${missing[*]} failed"
    fi
  fi
fi
if [ ! -x /usr/bin/chromium ]; then
  fail "/usr/bin/chromium is missing after the install"
fi

# --- Node's ws, pinned by the lock file -------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
  fail "npm not found: install Node.js (>= 18) and npm"
else
  lock=tests/node/package-lock.json
  stamp=tests/node/node_modules/.wsjet-lock-stamp
  if [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
    : # node_modules already matches the lock file
  elif npm ci --prefix tests/node --no-audit --no-fund --loglevel=error; then
    cp "$lock" "$stamp"
  else
    fail "npm ci --prefix tests/node failed"
  fi
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
  if [ "$STRICT" -eq 1 ]; then
    echo "install-system-deps: ${#FAILED[@]} step(s) failed (CI=true: fatal)" >&2
    exit 1
  fi
  echo "install-system-deps: ${#FAILED[@]} step(s) failed; the tests that need them will fail" >&2
fi
exit 0
