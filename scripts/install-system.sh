#!/usr/bin/env bash
# System packages restoredrill needs, installed only when missing (Debian/Ubuntu, as root or with sudo).
# - PostgreSQL server + client binaries (initdb, pg_ctl, pg_restore, pg_amcheck, pg_dump)
# - pgBackRest (the pgbackrest layer), stunnel4 and openssl (the tests' TLS front for a local S3 endpoint), lz4
# The distribution's cluster auto-creation is switched off: restoredrill starts its own throwaway instances.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

have_server() {
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/pg_amcheck >/dev/null 2>&1
}

packages=()
have_server || packages+=(postgresql postgresql-contrib)
command -v pg_restore >/dev/null 2>&1 || packages+=(postgresql-client)
getent passwd postgres >/dev/null 2>&1 || packages+=(postgresql-common)
command -v pgbackrest >/dev/null 2>&1 || packages+=(pgbackrest)
command -v stunnel4 >/dev/null 2>&1 || packages+=(stunnel4)
command -v openssl >/dev/null 2>&1 || packages+=(openssl)
command -v jq >/dev/null 2>&1 || packages+=(jq)     # the README's DSSE verification recipe, run by the tests
command -v lz4 >/dev/null 2>&1 || packages+=(lz4)   # the detection corpus rewrites an archived WAL segment

if [ "${#packages[@]}" -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi

echo "system packages: installing ${packages[*]}"
$SUDO mkdir -p /etc/postgresql-common
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "system packages: done"
