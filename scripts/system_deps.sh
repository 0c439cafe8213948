#!/usr/bin/env bash
# The programs the test suite starts for real, beyond Python packages: a PostgreSQL server
# (initdb, pg_ctl), redis-server, a C/C++ compiler for the local model's llama.cpp build, and
# headless Chromium with its driver for the console's browser tests (Playwright drives the
# system browser; it never downloads one).
# Installs what is missing with the distribution's packages where it can (root, or sudo that
# needs no password, on a Debian-like system); elsewhere it stops at once with one line naming
# what to install, instead of letting dozens of tests fail on the same missing binary.
#
#   scripts/system_deps.sh          # idempotent; does nothing when everything is present
set -euo pipefail

say() { printf '[system_deps] %s\n' "$*"; }

have_postgres() {
  { command -v pg_ctl && command -v initdb; } >/dev/null 2>&1 \
    || compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

missing=()
have_postgres || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
{ command -v gcc && command -v g++; } >/dev/null 2>&1 || missing+=(build-essential)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" == 0 ]]; then
  run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run=(sudo -n)
else
  printf '[system_deps] error: missing: %s; install them (Debian/Ubuntu: sudo apt-get install -y %s) and rerun\n' \
    "${missing[*]}" "${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  printf '[system_deps] error: missing: %s; install them with your package manager and rerun\n' \
    "${missing[*]}" >&2
  exit 1
fi

say "installing ${missing[*]} (apt-get)"
"${run[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
# Debian starts the services it installs; the tests start their own servers on random ports.
for service in redis-server postgresql; do
  if command -v service >/dev/null 2>&1; then "${run[@]}" service "$service" stop >/dev/null 2>&1 || true; fi
done
have_postgres || { printf '[system_deps] error: postgresql installed but pg_ctl not found\n' >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { printf '[system_deps] error: redis-server not found after install\n' >&2; exit 1; }
command -v chromium >/dev/null 2>&1 || { printf '[system_deps] error: chromium not found after install\n' >&2; exit 1; }
say "done"
