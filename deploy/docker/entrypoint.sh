#!/bin/sh
# SwarmHub container entrypoint.
#
#   (no arguments)          run the service named by $SWARMHUB_SERVICE
#   router|worker|coordinator|cache (or task-router, agent-worker, ...)   run that service
#   anything else           exec it as is (e.g. `swarmhub ...`, `python -m swarmhub.loadgen ...`, `sh`)
#
# The service replaces this shell (exec), so it receives SIGTERM directly and drains gracefully.
set -eu

service_module() {
    case "$1" in
        router|task-router|task_router) echo task_router ;;
        worker|agent-worker|agent_worker) echo agent_worker ;;
        coordinator|swarm-coordinator|swarm_coordinator) echo swarm_coordinator ;;
        cache|cache-service|cache_service) echo cache_service ;;
        *) return 1 ;;
    esac
}

if [ "$#" -eq 0 ]; then
    set -- "${SWARMHUB_SERVICE:-}"
fi

if module="$(service_module "$1")"; then
    shift
    exec python -m "swarmhub.$module" "$@"
fi

if [ -z "$1" ]; then
    echo "swarmhub: no service given. Set SWARMHUB_SERVICE or pass one of:" \
        "router, worker, coordinator, cache (or a command to run)." >&2
    exit 64
fi

exec "$@"
