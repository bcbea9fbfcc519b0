#!/usr/bin/env bash
# Starts a Docker engine for the live compose test where none runs, and stops only the one it
# started (by the PID it recorded): `dockerd.sh start`, `dockerd.sh stop`. An engine that was
# already running is left alone, both ways. Needs root to start one.
set -euo pipefail
cd "$(dirname "$0")"

STATE=.tools
PID_FILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log
START_TIMEOUT_S=60

case "${1:-}" in
start)
    if docker info >/dev/null 2>&1; then
        echo "dockerd.sh: a Docker engine is already running; using it"
        exit 0
    fi
    mkdir -p "$STATE"
    setsid dockerd >"$LOG" 2>&1 &
    echo $! >"$PID_FILE"
    for _ in $(seq "$START_TIMEOUT_S"); do
        if docker info >/dev/null 2>&1; then
            echo "dockerd.sh: started dockerd (pid $(cat "$PID_FILE"), log docker/ci/$LOG)"
            exit 0
        fi
        sleep 1
    done
    echo "dockerd.sh: dockerd did not answer within ${START_TIMEOUT_S} s:" >&2
    tail -20 "$LOG" >&2
    exit 1
    ;;
stop)
    [ -f "$PID_FILE" ] || exit 0
    pid=$(cat "$PID_FILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        echo "dockerd.sh: stopped dockerd (pid $pid)"
    fi
    rm -f "$PID_FILE"
    ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
