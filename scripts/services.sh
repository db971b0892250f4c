#!/usr/bin/env bash
# Makes sure the services the tests use are running on this machine:
# PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379. Starts a stopped
# one with the machine's own commands; skips a running one.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open 5432; then
    log "skip: postgres already listening on 127.0.0.1:5432"
elif command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
    log "start: postgres"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
else
    log "warning: postgres is not running and cannot be started here; Postgres tests will fail"
fi

if port_open 6379; then
    log "skip: redis already listening on 127.0.0.1:6379"
elif command -v redis-server >/dev/null; then
    log "start: redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
else
    log "warning: redis is not running and cannot be started here"
fi

for _ in $(seq 1 50); do
    port_open 5432 && break
    sleep 0.2
done
