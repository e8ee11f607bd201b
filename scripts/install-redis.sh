#!/usr/bin/env bash
# Installs what the Redis backplane tests (tests/test_redis.py) need:
#   - Debian's redis-server (the tests start their own on 127.0.0.1, on a free port,
#     in a temporary directory, and stop it: no service is configured or started here);
#   - the redis Python package in .venv, when .venv exists and lacks it.
# Idempotent: what is already there is not installed again.
# With CI=true any failure is fatal; elsewhere it is reported and the script goes on
# (tests/test_redis.py then fails with a message naming what is missing).
set -uo pipefail
cd "$(dirname "$0")/.."

STRICT=0
if [ "${CI:-}" = "true" ]; then
  STRICT=1
fi
FAILED=()

fail() {
  echo "install-redis: ERROR: $*" >&2
  FAILED+=("$*")
}

redis_server() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]
}

if ! redis_server; then
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo -n)
    else
      fail "not root and no sudo: cannot apt-get install redis-server"
    fi
  fi
  if [ "${#FAILED[@]}" -eq 0 ]; then
    echo "install-redis: apt-get install redis-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get update -qq; then
      fail "apt-get update failed"
    elif ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends redis-server >/dev/null; then
      fail "apt-get install redis-server failed"
    fi
  fi
  if ! redis_server; then
    fail "redis-server is missing after the install"
  fi
fi

if [ -x .venv/bin/python ] && ! .venv/bin/python -c "import redis.asyncio" >/dev/null 2>&1; then
  echo "install-redis: pip install 'redis>=5' into .venv"
  if ! .venv/bin/pip install --quiet --disable-pip-version-check 'redis>=5'; then
    fail "pip install redis failed"
  fi
fi

if [ "${#FAILED[@]}" -gt 0 ]; then
  if [ "$STRICT" -eq 1 ]; then
    echo "install-redis: ${#FAILED[@]} step(s) failed (CI=true: fatal)" >&2
    exit 1
  fi
  echo "install-redis: ${#FAILED[@]} step(s) failed; tests/test_redis.py will fail" >&2
fi
exit 0
