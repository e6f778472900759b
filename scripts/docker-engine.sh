#!/usr/bin/env bash
# A Docker engine for the container tests, on machines without systemd (CI VMs, dev containers).
#
#   scripts/docker-engine.sh start    engine answering on /var/run/docker.sock afterwards (installs docker.io once)
#   scripts/docker-engine.sh stop     stops the dockerd that `start` launched, restores net.ipv4.ip_forward
#   scripts/docker-engine.sh status   exit 0 when an engine answers on the default socket
#
# If any engine already answers (Docker Desktop, a systemd docker, a CI runner's engine), `start` leaves it
# alone and `stop` never touches it. Our own dockerd keeps everything in one folder:
#   $RESTOREDRILL_DOCKER_DIR (default /var/lib/restoredrill-docker)/{data,exec,dockerd.pid,dockerd.log}
# and listens on the default socket, so the docker CLI, docker-py and testcontainers need no DOCKER_HOST.
set -euo pipefail

DIR="${RESTOREDRILL_DOCKER_DIR:-/var/lib/restoredrill-docker}"
SOCKET=/var/run/docker.sock
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
IP_FORWARD_SAVED="$DIR/ip_forward.before"
IP_FORWARD=/proc/sys/net/ipv4/ip_forward
TIMEOUT=60

# The docker CLI may be newer than the engine (here: CLI 28.x in /usr/local/bin, engine 20.10 = API 1.41).
# The CLI negotiates down to the engine's API version by itself, so nothing is pinned by default; a caller
# whose client cannot negotiate may export DOCKER_API_VERSION=1.41 and it is passed through unchanged.
# Always ask the default socket: a stray DOCKER_HOST/DOCKER_CONTEXT must not make us start a second engine.
dk() { env -u DOCKER_CONTEXT docker --host "unix://$SOCKET" "$@"; }
engine_answers() { command -v docker >/dev/null 2>&1 && dk info >/dev/null 2>&1; }

# The pid from our pidfile, printed only while that process is a live dockerd.
our_dockerd_pid() {
  local pid
  [ -s "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = dockerd ] || return 1
  echo "$pid"
}

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      exec sudo --preserve-env=RESTOREDRILL_DOCKER_DIR,DOCKER_API_VERSION "$0" "${@:2}"
    fi
    echo "docker-engine: must run as root (or with sudo) to $1 dockerd" >&2
    exit 1
  fi
}

# `start` and `stop` may be called concurrently (two make targets, two CI steps): one at a time.
lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/lock"
  flock -w 120 9
}

install_engine() {
  command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 && return 0
  echo "docker-engine: installing docker.io (apt)"
  export DEBIAN_FRONTEND=noninteractive
  # Skip `apt-get update` when the package lists already know docker.io (saves ~10 s on a warm machine);
  # lists that are stale (a version the mirror no longer has) get one update and a second try.
  if ! apt-cache show docker.io >/dev/null 2>&1; then
    apt-get update -qq
  fi
  if ! apt-get install -y -qq --no-install-recommends docker.io >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
}

start() {
  if engine_answers; then
    echo "docker-engine: an engine already answers on $SOCKET"
    return 0
  fi
  need_root start "$@"
  lock
  local pid
  if ! pid="$(our_dockerd_pid)"; then
    # Re-check under the lock: a concurrent `start` may have finished meanwhile.
    if engine_answers; then
      echo "docker-engine: an engine already answers on $SOCKET"
      return 0
    fi
    install_engine
    mkdir -p "$DIR/data" "$DIR/exec"
    rm -f "$PIDFILE"
    # dockerd switches net.ipv4.ip_forward on (it routes the bridge); remember the value to restore at stop.
    # Keep the first recorded value if a previous run crashed without `stop`.
    [ -e "$IP_FORWARD_SAVED" ] || cat "$IP_FORWARD" >"$IP_FORWARD_SAVED"
    # One previous log is kept (dockerd logs every container start at info level).
    if [ -f "$LOG" ] && [ "$(stat -c %s "$LOG")" -gt 10000000 ]; then
      mv -f "$LOG" "$LOG.old"
    fi
    echo "=== $(date -u +%FT%TZ) start" >>"$LOG"
    # setsid: its own session, so the engine outlives this script and ignores Ctrl-C / job-control signals
    # sent to the caller's process group. dockerd starts its own containerd under the exec root.
    # 9>&-: dockerd must not inherit the lock's descriptor, or it would hold the lock for its whole life.
    setsid dockerd \
      --host "unix://$SOCKET" \
      --data-root "$DIR/data" \
      --exec-root "$DIR/exec" \
      --pidfile "$PIDFILE" \
      >>"$LOG" 2>&1 </dev/null 9>&- &
    pid=$!
  else
    echo "docker-engine: dockerd $pid (ours) is running but not answering yet; waiting"
  fi

  local deadline=$((SECONDS + TIMEOUT))
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "docker-engine: dockerd exited during start; log tail ($LOG):" >&2
      tail -n 40 "$LOG" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "docker-engine: no answer on $SOCKET after ${TIMEOUT}s; log tail ($LOG):" >&2
      tail -n 40 "$LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "docker-engine: dockerd $(our_dockerd_pid || echo "$pid") answers on $SOCKET (data in $DIR)"
}

stop() {
  if ! our_dockerd_pid >/dev/null && [ ! -e "$IP_FORWARD_SAVED" ]; then
    echo "docker-engine: no dockerd started by this script (nothing to stop)"
    return 0
  fi
  need_root stop "$@"
  lock
  local pid
  if pid="$(our_dockerd_pid)"; then
    # SIGTERM: dockerd stops its containers (10 s grace each, in parallel) and its containerd, then exits.
    kill -TERM "$pid"
    local deadline=$((SECONDS + 45))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "docker-engine: dockerd $pid ignored SIGTERM for 45 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "docker-engine: dockerd $pid stopped"
  fi
  rm -f "$PIDFILE"
  if [ -e "$IP_FORWARD_SAVED" ]; then
    if cat "$IP_FORWARD_SAVED" >"$IP_FORWARD"; then
      echo "docker-engine: net.ipv4.ip_forward restored to $(cat "$IP_FORWARD")"
    else
      echo "docker-engine: could not restore net.ipv4.ip_forward to $(cat "$IP_FORWARD_SAVED")" >&2
    fi
    rm -f "$IP_FORWARD_SAVED"
  fi
}

status() {
  if engine_answers; then
    local version
    version="$(dk version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || true)"
    echo "docker-engine: answering on $SOCKET, engine ${version:-unknown}$(our_dockerd_pid >/dev/null && echo ", started by this script")"
    return 0
  fi
  echo "docker-engine: no engine answers on $SOCKET"
  return 1
}

case "${1:-}" in
  start) start "$@" ;;
  stop) stop "$@" ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
