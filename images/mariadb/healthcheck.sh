#!/bin/sh
# healthcheck.sh [--defaults-file FILE | --defaults-extra-file FILE] [--no-defaults] TEST...
# Healthy (0) when every TEST passes, in the order given; the first failure prints why and exits 1.
# kolla-ansible runs: healthcheck.sh --defaults-file /etc/mysql/healthcheck.cnf --connect --galera_online
# (healthcheck.cnf, a [mariadb-client] section with the healthcheck user and its password, comes
# from the deployment through config.json.)
# Tests:
#   --connect               the server accepts a connection and answers a query
#   --innodb_initialized    InnoDB is available
#   --galera_online         this Galera node is Synced (wsrep_local_state 4)
#   --galera_ready          this Galera node accepts queries (wsrep_ready ON)
# With no test, --connect. Option values may follow `=` or come as the next argument.
set -eu

usage() {
    echo "usage: healthcheck.sh [--defaults-file FILE|--defaults-extra-file FILE|--no-defaults] TEST..." >&2
    echo "tests: --connect --innodb_initialized --galera_online --galera_ready" >&2
    exit 2
}

defaults=""
tests=""
while [ $# -gt 0 ]; do
    case "$1" in
        --defaults-file=*|--defaults-extra-file=*)
            option=${1%%=*}; file=${1#*=} ;;
        --defaults-file|--defaults-extra-file)
            [ $# -ge 2 ] || usage
            option=$1; file=$2; shift ;;
        --no-defaults)
            option=--no-defaults; file="" ;;
        --connect|--innodb_initialized|--galera_online|--galera_ready)
            tests="$tests ${1#--}"; shift; continue ;;
        -h|--help) usage ;;
        *) echo "healthcheck.sh: unknown option $1" >&2; usage ;;
    esac
    shift
    if [ -n "$file" ] && [ ! -r "$file" ]; then
        echo "healthcheck.sh: $option $file: no such file, or not readable" >&2
        exit 1
    fi
    defaults="$option${file:+=$file}"
done
[ -n "$tests" ] || tests=connect

query() {
    # One value, or nothing; a connection error fails the check.
    mariadb ${defaults:+"$defaults"} --connect-timeout=10 --batch --skip-column-names -e "$1"
}

for test in $tests; do
    case "$test" in
        connect)
            answer=$(query "SELECT 1") || { echo "healthcheck.sh: connect: cannot connect" >&2; exit 1; }
            [ "$answer" = 1 ] || { echo "healthcheck.sh: connect: unexpected answer '$answer'" >&2; exit 1; } ;;
        innodb_initialized)
            answer=$(query "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB'
                            AND SUPPORT IN ('YES', 'DEFAULT', 'ENABLED')") || exit 1
            [ "$answer" = 1 ] || { echo "healthcheck.sh: innodb_initialized: InnoDB is not available" >&2; exit 1; } ;;
        galera_online)
            answer=$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
                            WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE'") || exit 1
            [ "$answer" = 4 ] || {
                echo "healthcheck.sh: galera_online: wsrep_local_state is '${answer:-not set (wsrep off)}', not 4 (Synced)" >&2
                exit 1
            } ;;
        galera_ready)
            answer=$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
                            WHERE VARIABLE_NAME = 'WSREP_READY'") || exit 1
            [ "$answer" = ON ] || { echo "healthcheck.sh: galera_ready: wsrep_ready is '${answer:-not set}', not ON" >&2; exit 1; } ;;
    esac
done
exit 0
