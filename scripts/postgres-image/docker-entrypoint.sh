#!/bin/sh
# Entrypoint of the PostgreSQL image built from the host's own binaries (scripts/build-postgres-image.sh).
#
# It mirrors the official image's docker-entrypoint.sh in everything tools rely on:
# - POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default = user), POSTGRES_INITDB_ARGS,
#   POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD, and their *_FILE variants (docker secrets);
# - an empty $PGDATA is initialised: initdb (superuser password stored as SCRAM), socket and 127.0.0.1 trusted
#   inside the container, `host all all all scram-sha-256` for everyone else, listen_addresses = '*' (from the
#   image's postgresql.conf.sample), then /docker-entrypoint-initdb.d/* against a temporary socket-only server;
# - a $PGDATA that already holds a cluster (PG_VERSION) is started as it is, with the arguments given;
# - arguments starting with '-' are options for postgres (`docker run IMAGE -c fsync=off`);
# - postgres is exec'd: it is PID 1 and gets `docker stop`'s signal itself (the image's STOPSIGNAL is SIGINT,
#   a fast shutdown, like the official image).
# Deviation: initdb runs with --no-sync (see below; RESTOREDRILL_INITDB_SYNC=true for the full sync).
# It runs as uid 999 (postgres). Started as root (`--user 0`), it chowns $PGDATA to postgres and drops to it.
# POSIX sh (dash): the image has no bash.
set -eu

# Print $1 single-quoted for sh: pg_ctl -o hands its string to a shell.
sh_quote() {
	_rest=$1 _out=
	while :; do
		case $_rest in
			*\'*) _out="$_out${_rest%%\'*}'\\''"; _rest=${_rest#*\'} ;;
			*) _out="$_out$_rest"; break ;;
		esac
	done
	printf "'%s'" "$_out"
}

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (exclusive), else DEFAULT.
file_env() {
	_var=$1 _def=${2:-}
	eval "_val=\${$_var:-} _fval=\${${_var}_FILE:-}"
	if [ -n "$_val" ] && [ -n "$_fval" ]; then
		echo "error: both $_var and ${_var}_FILE are set (but are exclusive)" >&2
		exit 1
	fi
	if [ -n "$_fval" ]; then
		_val=$(cat "$_fval")
	elif [ -z "$_val" ]; then
		_val=$_def
	fi
	export "$_var=$_val"
	unset "${_var}_FILE"
}

want_help() {
	for _arg; do
		case $_arg in
			'-?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	: "${PGDATA:=/var/lib/postgresql/data}"
	export PGDATA
}

create_dirs() {
	mkdir -p "$PGDATA"
	# postgres refuses a data directory readable by others; ignore failure (then postgres explains).
	chmod 00700 "$PGDATA" 2>/dev/null || :
	mkdir -p /var/run/postgresql
	chmod 03775 /var/run/postgresql 2>/dev/null || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		chmod 00700 "$POSTGRES_INITDB_WALDIR" 2>/dev/null || :
	fi
	if [ "$(id -u)" = 0 ]; then
		chown -R postgres:postgres "$PGDATA" /var/run/postgresql ${POSTGRES_INITDB_WALDIR:+"$POSTGRES_INITDB_WALDIR"}
	elif [ ! -w "$PGDATA" ]; then
		echo "error: $PGDATA is not writable by uid $(id -u); chown the mounted directory to $(id -u):$(id -g)" >&2
		exit 1
	fi
}

docker_process_sql() {
	PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
		--dbname "$POSTGRES_DB" "$@"
}

init_database() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOM'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
			       (or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)
		EOM
		exit 1
	fi

	# initdb: the locale comes from LANG (en_US.utf8 in the image) unless POSTGRES_INITDB_ARGS says otherwise.
	# POSTGRES_INITDB_ARGS is shell-parsed (eval) like the official image, so quoted values work.
	_waldir=
	[ -z "${POSTGRES_INITDB_WALDIR:-}" ] || _waldir="--waldir=$(sh_quote "$POSTGRES_INITDB_WALDIR")"
	# One deviation from the official image, invisible to clients: initdb --no-sync. Its final fsync of ~1,000
	# new files costs 0.4-1.5 s per container start here, for a cluster that has nothing to lose yet (only a
	# host crash in the next seconds could hurt it). RESTOREDRILL_INITDB_SYNC=true restores the full sync.
	_sync=--no-sync
	[ "${RESTOREDRILL_INITDB_SYNC:-}" != true ] || _sync=
	if [ -n "$POSTGRES_PASSWORD" ]; then
		printf '%s\n' "$POSTGRES_PASSWORD" |
			eval "initdb --username=$(sh_quote "$POSTGRES_USER") --pwfile=/dev/stdin $_sync $_waldir $POSTGRES_INITDB_ARGS"
	else
		eval "initdb --username=$(sh_quote "$POSTGRES_USER") $_sync $_waldir $POSTGRES_INITDB_ARGS"
	fi

	# Everyone outside the container: the method the server encrypts passwords with (scram-sha-256 on 14+),
	# unless POSTGRES_HOST_AUTH_METHOD says otherwise. -c options given to the container count (-C reads them).
	if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
		POSTGRES_HOST_AUTH_METHOD=$(postgres -C password_encryption "$@")
	fi
	{
		printf '\n'
		[ "$POSTGRES_HOST_AUTH_METHOD" != trust ] || printf '# warning trust is enabled for all connections\n'
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"

	# A temporary server on the socket only, with the container's own options (e.g. shared_preload_libraries).
	_opts=
	for _arg; do _opts="$_opts $(sh_quote "$_arg")"; done
	export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" \
		pg_ctl -D "$PGDATA" -o "$_opts -c listen_addresses='' -p ${PGPORT:-5432}" -w start

	if [ "$POSTGRES_DB" != postgres ]; then
		_exists=$(PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
			--dbname postgres --set db="$POSTGRES_DB" --tuples-only --no-align <<-'EOSQL'
				SELECT 1 FROM pg_database WHERE datname = :'db' ;
			EOSQL
		)
		if [ -z "$_exists" ]; then
			PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
				--dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
					CREATE DATABASE :"db" ;
				EOSQL
		fi
	fi

	echo
	for _f in /docker-entrypoint-initdb.d/*; do
		[ -e "$_f" ] || continue
		case $_f in
			*.sh)
				# Executable scripts run; others are sourced (they see docker_process_sql, like upstream).
				if [ -x "$_f" ]; then
					echo "$0: running $_f"
					"$_f"
				else
					echo "$0: sourcing $_f"
					set +u
					# shellcheck disable=SC1090
					. "$_f"
					set -u
				fi
				;;
			*.sql) echo "$0: running $_f"; docker_process_sql -f "$_f"; echo ;;
			*.sql.gz) echo "$0: running $_f"; gzip -dc "$_f" | docker_process_sql; echo ;;
			*.sql.xz) echo "$0: running $_f"; xz -dc "$_f" | docker_process_sql; echo ;;
			*.sql.zst) echo "$0: running $_f"; zstd -dc "$_f" | docker_process_sql; echo ;;
			*) echo "$0: ignoring $_f" ;;
		esac
	done

	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD
	echo
	echo 'PostgreSQL init process complete; ready for start up.'
	echo
}

# `docker run IMAGE -c x=y` means `postgres -c x=y`.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && ! want_help "$@"; then
	setup_env
	create_dirs
	if [ "$(id -u)" = 0 ]; then
		# Like the official image's gosu step: the server never runs as root.
		exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
	fi
	if [ -s "$PGDATA/PG_VERSION" ]; then
		echo
		echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
		echo
	else
		shift
		init_database "$@"
		set -- postgres "$@"
	fi
fi

exec "$@"
