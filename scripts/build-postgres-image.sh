#!/usr/bin/env bash
# Build a PostgreSQL image from the HOST's own binaries, with no registry and no image builder:
#
#   scripts/build-postgres-image.sh [MAJOR] [--force]      (MAJOR defaults to 15)
#
# Tags restoredrill/postgres:MAJOR-local, and postgres:MAJOR unless a postgres:MAJOR not built here exists
# already (a real official image is left alone). Nothing is built when restoredrill/postgres:MAJOR-local
# exists with the same recipe (this script, the entrypoint, the host's postgresql-MAJOR version, the
# locales); --force rebuilds and retags both. Needs a Docker engine (scripts/docker-engine.sh start).
#
# The image behaves like the official postgres:MAJOR for the tools that use it (see
# scripts/postgres-image/docker-entrypoint.sh): POSTGRES_USER/PASSWORD/DB/INITDB_ARGS, PGDATA
# (/var/lib/postgresql/data), /docker-entrypoint-initdb.d, runs as uid/gid 999 "postgres", LANG=en_US.utf8,
# STOPSIGNAL SIGINT, port 5432, postgres as PID 1. More locales: RESTOREDRILL_IMAGE_LOCALES="en_US.UTF-8 de_DE.UTF-8".
#
# How: /usr/lib/postgresql/MAJOR/{bin,lib}, /usr/share/postgresql/MAJOR, dash and a few coreutils for the
# entrypoint, every shared library `ldd` names, tzdata and compiled locales go into one layer tarball, which
# is `docker load`ed with a hand-written image config (see below). About 4 s, 90 MB.
set -euo pipefail

MAJOR=15
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    [0-9]*) MAJOR="$arg" ;;
    -h | --help)
      sed -n '2,/^set -euo/{ /^#/p; }' "$0"
      exit 0
      ;;
    *)
      echo "usage: $0 [MAJOR] [--force]" >&2
      exit 2
      ;;
  esac
done

HERE="$(cd "$(dirname "$0")" && pwd)"
PGBIN="/usr/lib/postgresql/$MAJOR/bin"
PGLIB="/usr/lib/postgresql/$MAJOR/lib"
PGSHARE="/usr/share/postgresql/$MAJOR"
TAG="postgres:$MAJOR"
LOCAL_TAG="restoredrill/postgres:$MAJOR-local"
LABEL=restoredrill.image
LOCALES="${RESTOREDRILL_IMAGE_LOCALES:-en_US.UTF-8}"
UID_PG=999 # the official image's postgres uid/gid: callers chown bind-mounted data directories to 999:999

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

if [ ! -x "$PGBIN/postgres" ]; then
  echo "build-postgres-image: no PostgreSQL $MAJOR server in $PGBIN" \
    "(installed: $(cd /usr/lib/postgresql 2>/dev/null && echo *))" >&2
  exit 1
fi
# The CLI negotiates the API version with an older engine (CLI 28 + engine 20.10 works as is).
if ! docker info >/dev/null 2>&1; then
  echo "build-postgres-image: no Docker engine answers (start one: scripts/docker-engine.sh start)" >&2
  exit 1
fi

exists() { docker image inspect "$1" >/dev/null 2>&1; }
label_of() { docker image inspect -f "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
built_here() { [ "$(label_of "$1" "$LABEL")" = host-binaries ]; }

# Tag postgres:MAJOR with our image unless someone else's postgres:MAJOR is there (and no --force).
tag_postgres() {
  if exists "$TAG" && ! built_here "$TAG" && [ "$FORCE" -eq 0 ]; then
    echo "build-postgres-image: $TAG exists and was not built here; left alone (use $LOCAL_TAG or --force)"
  else
    docker tag "$LOCAL_TAG" "$TAG"
  fi
}

# Parallel callers (pytest-xdist workers, two make targets) build once: the second waits, then finds the image.
# The lock is this script itself, opened read-only: any user can take it, and no lock file is left behind.
exec 9<"$0"
flock -w 300 9

version="$(dpkg-query -W -f '${Version}' "postgresql-$MAJOR" 2>/dev/null || "$PGBIN/postgres" --version | awk '{print $3}')"
[[ "$version" =~ ^[A-Za-z0-9.+~:-]+$ ]] || version="$MAJOR"
# What the image is made of: this script, the entrypoint, the host's PostgreSQL package version, the locales.
# An image with another recipe (the scripts changed, or apt upgraded postgresql-N) is rebuilt, not reused.
recipe="$({ cat "$0" "$HERE/postgres-image/docker-entrypoint.sh"; echo "$MAJOR $version $LOCALES"; } | sha256sum | cut -c1-16)"

if [ "$FORCE" -eq 0 ] && exists "$LOCAL_TAG"; then
  if [ "$(label_of "$LOCAL_TAG" restoredrill.recipe)" = "$recipe" ]; then
    tag_postgres
    echo "build-postgres-image: $LOCAL_TAG is up to date ($(docker image inspect -f '{{.Id}}' "$LOCAL_TAG" | cut -c8-19)); --force rebuilds"
    exit 0
  fi
  echo "build-postgres-image: $LOCAL_TAG was built from another recipe (scripts, locales or host PostgreSQL $version changed); rebuilding"
fi

started=$(date +%s.%N)

# localedef needs the locale sources of the `locales` package (compiling is done by libc-bin's localedef);
# Debian's PostgreSQL uses the system time zone data (--with-system-tzdata=/usr/share/zoneinfo).
host_packages=()
[ -e /usr/share/i18n/charmaps/UTF-8.gz ] && [ -d /usr/share/i18n/locales ] || host_packages+=(locales)
[ -d /usr/share/zoneinfo ] || host_packages+=(tzdata)
if [ "${#host_packages[@]}" -gt 0 ]; then
  echo "build-postgres-image: installing ${host_packages[*]} on the host"
  export DEBIAN_FRONTEND=noninteractive
  apt-cache show "${host_packages[@]}" >/dev/null 2>&1 || $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${host_packages[@]}" >/dev/null
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/restoredrill-pgimage.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# The layer is the host's own files, taken in place, plus a small staging tree for what we generate.
STAGE="$WORK/stage"
mkdir -p "$STAGE/usr/lib/locale"

# Locales compiled for the image (a C.UTF-8-only image collates differently from the official one), in the
# background while the rest is gathered: localedef takes ~1 s per locale. Given a path, localedef writes a
# locale directory, where glibc finds LANG=en_US.utf8 and en_US.UTF-8 alike.
locale_pids=()
for loc in $LOCALES; do
  lang="${loc%%.*}"
  charset="${loc#*.}"
  norm="$(tr '[:upper:]' '[:lower:]' <<<"${charset//-/}")" # UTF-8 -> utf8, glibc's normalised codeset name
  localedef --quiet -i "$lang" -f "$charset" "$STAGE/usr/lib/locale/$lang.$norm" &
  locale_pids+=("$!:$loc:$lang.$norm")
done

# usrmerge: the host's /lib, /lib64, /bin, /sbin are symlinks into /usr. Recreate them as they are, or the
# ELF interpreter (/lib64/ld-linux-x86-64.so.2) does not exist in the container. Files are taken below
# under their symlink-free directories, so the two never collide.
for top in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$top" ]; then
    ln -s "$(readlink "/$top")" "$STAGE/$top"
  fi
done

# Programs: every PostgreSQL binary of this major (the real psql, not Debian's pg_wrapper), dash as /bin/sh,
# and the few tools the entrypoint and typical initdb.d scripts use. setpriv drops root like gosu does;
# initdb runs `locale -a` to create the libc collations (en_US.utf8, en_US, C.utf8...) as on the official image.
programs=("$PGBIN"/*)
for tool in sh dash locale mkdir chmod chown rm cat ls id env sleep setpriv gzip xz zstd sed grep head tail touch mv cp ln find sort tr wc date; do
  path="$(command -v "$tool" || true)"
  [[ "$path" == /* ]] && programs+=("$path")
done
# Server modules (plpgsql, contrib, walreceiver...), without the JIT provider: llvmjit.so pulls ~100 MB of
# libLLVM; without the file PostgreSQL silently runs with jit unavailable.
modules=()
for so in "$PGLIB"/*.so; do
  case "${so##*/}" in llvmjit*) continue ;; esac
  modules+=("$so")
done

# Every shared library ldd resolves (transitively), plus the loader. "not found" fails the build.
ldd_out="$(ldd "${programs[@]}" "${modules[@]}" 2>/dev/null || true)"
if grep -q 'not found' <<<"$ldd_out"; then
  echo "build-postgres-image: unresolved libraries:" >&2
  grep 'not found' <<<"$ldd_out" | sort -u >&2
  exit 1
fi
mapfile -t libs < <(sed -nE 's/^\s+(\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/\2/p' <<<"$ldd_out" | sort -u)

# Each path once, with a symlink-free directory part, followed along its symlink chain
# (libfoo.so.1 -> libfoo.so.1.2.3), so links and their targets are both taken.
declare -A realdir=() seen=()
files=()
add() {
  local p="$1" dir name target
  while :; do
    dir="${p%/*}"
    name="${p##*/}"
    [ -n "${realdir[$dir]+x}" ] || realdir[$dir]="$(realpath -e "$dir")"
    p="${realdir[$dir]}/$name"
    [ -n "${seen[$p]+x}" ] && return 0
    seen[$p]=1
    files+=("${p#/}")
    [ -L "$p" ] || return 0
    target="$(readlink "$p")"
    [[ "$target" == /* ]] || target="${realdir[$dir]}/$target"
    p="$target"
  done
}
for f in "${programs[@]}" "${modules[@]}" "${libs[@]}"; do add "$f"; done
[ -e /usr/lib/locale/C.utf8 ] && files+=(usr/lib/locale/C.utf8)
files+=(usr/share/zoneinfo "${PGSHARE#/}")

# The official image's Dockerfile does the same: clusters initdb'd in the container listen on every address.
mkdir -p "$STAGE$PGSHARE"
sed -r "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" "$PGSHARE/postgresql.conf.sample" \
  >"$STAGE$PGSHARE/postgresql.conf.sample"

# Users, directories, entrypoint.
mkdir -p "$STAGE/etc" "$STAGE/tmp" "$STAGE/run/postgresql" "$STAGE/var/lib/postgresql/data" \
  "$STAGE/usr/local/bin" "$STAGE/docker-entrypoint-initdb.d"
chmod 1777 "$STAGE/tmp"
chmod 3775 "$STAGE/run/postgresql"
chmod 0700 "$STAGE/var/lib/postgresql/data"
ln -s ../run "$STAGE/var/run" # Debian's compiled-in socket dir is /var/run/postgresql
cat >"$STAGE/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
postgres:x:$UID_PG:$UID_PG:PostgreSQL administrator:/var/lib/postgresql:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$STAGE/etc/group" <<EOF
root:x:0:
postgres:x:$UID_PG:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$STAGE/etc/nsswitch.conf"
[ -e /usr/share/zoneinfo/Etc/UTC ] && ln -s /usr/share/zoneinfo/Etc/UTC "$STAGE/etc/localtime"
install -m 0755 "$HERE/postgres-image/docker-entrypoint.sh" "$STAGE/usr/local/bin/docker-entrypoint.sh"
ln -s usr/local/bin/docker-entrypoint.sh "$STAGE/docker-entrypoint.sh" # the official image has this too

for entry in "${locale_pids[@]}"; do
  IFS=: read -r pid loc dir <<<"$entry"
  # localedef exits 1 for mere warnings (and still writes the locale); anything above 1 is an error.
  rc=0
  wait "$pid" || rc=$?
  if [ "$rc" -gt 1 ] || [ ! -e "$STAGE/usr/lib/locale/$dir/LC_COLLATE" ]; then
    echo "build-postgres-image: localedef $loc failed (rc=$rc)" >&2
    exit 1
  fi
done

# The layer tarball, written once: the host's files in place, then the staging tree, then the postgres
# directories. Ownership is set in the archive (root, and 999:999 for the postgres directories), so an
# unprivileged builder works too. Parent directories missing from the archive are created by the engine.
LAYER="$WORK/rootfs.tar"
tar -C / --numeric-owner --owner=0 --group=0 \
  --exclude="${PGSHARE#/}/man" --exclude="${PGSHARE#/}/postgresql.conf.sample" -cf "$LAYER" "${files[@]}"
# The engine refuses an archive naming a path twice (directories too), so the staging tree is added by its
# leaves, never by a directory the host part already holds (usr, usr/lib/locale, usr/share/postgresql/N).
staged=(usr/local "${PGSHARE#/}/postgresql.conf.sample")
for entry in "$STAGE"/* "$STAGE"/usr/lib/locale/*; do
  case "${entry#"$STAGE"/}" in
    usr) ;;
    *) staged+=("${entry#"$STAGE"/}") ;;
  esac
done
tar -C "$STAGE" --numeric-owner --owner=0 --group=0 \
  --anchored --exclude=var/lib/postgresql --exclude=run/postgresql -rf "$LAYER" "${staged[@]}"
tar -C "$STAGE" --numeric-owner --owner="$UID_PG" --group="$UID_PG" -rf "$LAYER" var/lib/postgresql run/postgresql

case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
  amd64 | x86_64) arch=amd64 ;;
  arm64 | aarch64) arch=arm64 ;;
  ppc64el | ppc64le) arch=ppc64le ;;
  s390x) arch=s390x ;;
  *) arch="$(dpkg --print-architecture)" ;;
esac
created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
diff_id="$(sha256sum "$LAYER" | cut -d' ' -f1)"

# Why not `docker import --change ...`: it cannot set STOPSIGNAL (engine 20.10: "stopsignal is not a valid
# change command"), and postgres as PID 1 needs SIGINT (fast shutdown). SIGTERM is a "smart" shutdown that
# waits for every client to disconnect, so `docker stop` would hang 10 s and then SIGKILL the server.
# So the image is `docker load`ed from a docker-save style archive whose config we write ourselves: one layer
# (the rootfs tarball above), no builder, no registry, any engine version.
cat >"$WORK/config.json" <<EOF
{
  "architecture": "$arch",
  "os": "linux",
  "created": "$created",
  "config": {
    "User": "$UID_PG",
    "ExposedPorts": {"5432/tcp": {}},
    "Env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PGBIN",
      "PG_MAJOR=$MAJOR",
      "PG_VERSION=$version",
      "PGDATA=/var/lib/postgresql/data",
      "LANG=en_US.utf8"
    ],
    "Entrypoint": ["/usr/local/bin/docker-entrypoint.sh"],
    "Cmd": ["postgres"],
    "WorkingDir": "/",
    "StopSignal": "SIGINT",
    "Labels": {"$LABEL": "host-binaries", "restoredrill.recipe": "$recipe", "org.postgresql.version": "$version"}
  },
  "rootfs": {"type": "layers", "diff_ids": ["sha256:$diff_id"]},
  "history": [{"created": "$created", "created_by": "restoredrill scripts/build-postgres-image.sh $MAJOR",
               "comment": "PostgreSQL $version from the host's own binaries"}]
}
EOF
printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":["rootfs.tar"]}]\n' "$LOCAL_TAG" >"$WORK/manifest.json"

previous="$(docker image inspect -f '{{.Id}}' "$LOCAL_TAG" 2>/dev/null || true)"
tar -C "$WORK" -cf - manifest.json config.json rootfs.tar | docker load -q >/dev/null
tag_postgres
# --force: the replaced image has lost its tags; drop it unless a container still uses it.
current="$(docker image inspect -f '{{.Id}}' "$LOCAL_TAG")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi

size="$(docker image inspect -f '{{.Size}}' "$LOCAL_TAG")"
elapsed="$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')"
echo "build-postgres-image: $LOCAL_TAG ($version, $((size / 1024 / 1024)) MB) built in ${elapsed} s"
