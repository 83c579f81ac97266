# shellcheck shell=bash
# The local topology (scripts/cluster-up, cluster-down, cluster-ctl): the shape the Kubernetes
# manifests describe, on one machine, from Debian packages and the project's own binaries.
# Sourced, not run. Everything it starts lives under $CLUSTER_DIR, one supervisor per process.
#
#   ingress          nginx on 127.0.0.1:$CLUSTER_INGRESS_PORT (8090), from `ticketing routes nginx`
#   <svc>.<n>        `ticketing serve <svc>`: two replicas of queue, seat and reservation, one of the rest
#   nats.1..3        a three-node JetStream cluster (scripts/nats-server), streams with three replicas
#   redis            redis-server with append-only persistence
#   gateway          `ticketing pg-sim`, the card payment gateway the payment service calls, its
#                    webhooks sent through the ingress (an external system in production)
#   postgres         the dev stack's server (scripts/dev-stack), database ticketing_cluster; not ours
#                    to start or stop, only to restart for a fault

# shellcheck disable=SC2034  # the variables are used by the scripts that source this file

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLUSTER_DIR=${TICKETING_CLUSTER_DIR:-$HOME/.cache/ticketing/cluster}
RUN=$CLUSTER_DIR/run
LOGS=$CLUSTER_DIR/logs
INGRESS_PORT=${CLUSTER_INGRESS_PORT:-8090}
# Every other port is this base plus a fixed offset (see port_of).
BASE=${CLUSTER_PORT_BASE:-18000}
DATABASE=${CLUSTER_DATABASE:-ticketing_cluster}

# Service replicas, the HPA minimum of the hot services (k8s/components/hot) and one of the rest,
# with the Postgres pool each process opens (75 in all; scripts/dev-stack gives the server 300).
SERVICE_REPLICAS=(queue:2:2 concert:1:4 seat:2:10 reservation:2:12 wallet:1:8 wallet-history:1:4 ranking:1:2 external-data:1:4 user:1:2 payment:1:2 dead-letters:1:1)
NATS_NODES=3

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The service replica names, in start order: queue.1 queue.2 concert.1 ...
service_names() {
  local entry svc n i
  for entry in "${SERVICE_REPLICAS[@]}"; do
    IFS=: read -r svc n _ <<<"$entry"
    for i in $(seq 1 "$n"); do echo "$svc.$i"; done
  done
}

# Every name the topology supervises, in start order.
all_names() {
  local i
  for i in $(seq 1 "$NATS_NODES"); do echo "nats.$i"; done
  echo redis
  echo gateway
  service_names
  echo ingress
}

service_index() {
  local want=$1 k=0 entry svc
  for entry in "${SERVICE_REPLICAS[@]}"; do
    IFS=: read -r svc _ <<<"$entry"
    [ "$svc" = "$want" ] && { echo "$k"; return; }
    k=$((k + 1))
  done
  return 1
}

pool_of() {
  local want=$1 entry svc pool
  for entry in "${SERVICE_REPLICAS[@]}"; do
    IFS=: read -r svc _ pool <<<"$entry"
    [ "$svc" = "$want" ] && { echo "$pool"; return; }
  done
  return 1
}

# The port a name listens on: nats.N (client), nats-route.N, nats-monitor.N, redis, ingress, <svc>.<n>.
port_of() {
  local name=$1
  case "$name" in
    ingress) echo "$INGRESS_PORT" ;;
    redis) echo $((BASE + 379)) ;;
    gateway) echo $((BASE + 390)) ;;
    nats.*) echo $((BASE + 220 + ${name#nats.})) ;;
    nats-route.*) echo $((BASE + 250 + ${name#nats-route.})) ;;
    nats-monitor.*) echo $((BASE + 280 + ${name#nats-monitor.})) ;;
    # A service replica's /healthz, /readyz and /metrics (TICKETING_OPS_ADDR), which nginx does not route.
    ops.*) local replica=${name#ops.}; echo $((BASE + 600 + 10 * $(service_index "${replica%.*}") + ${replica##*.})) ;;
    *.*) echo $((BASE + 100 + 10 * $(service_index "${name%.*}") + ${name##*.})) ;;
    *) return 1 ;;
  esac
}

# Every port the topology binds, with the name that binds it.
all_ports() {
  local name i
  for name in $(all_names); do echo "$(port_of "$name") $name"; done
  for name in $(service_names); do echo "$(port_of "ops.$name") $name"; done
  for i in $(seq 1 "$NATS_NODES"); do
    echo "$(port_of "nats-route.$i") nats.$i"
    echo "$(port_of "nats-monitor.$i") nats.$i"
  done
}

nats_urls() {
  local i urls=()
  for i in $(seq 1 "$NATS_NODES"); do urls+=("nats://127.0.0.1:$(port_of "nats.$i")"); done
  (IFS=,; echo "${urls[*]}")
}

database_url() { echo "postgres://postgres@127.0.0.1:5432/$DATABASE?sslmode=disable"; }
# The URL a service's replicas connect with: its own role, which owns its schema and nothing else
# (`ticketing migrate` makes it; the dev stack's Postgres trusts loopback connections).
service_database_url() { echo "postgres://ticketing_${1//-/_}@127.0.0.1:5432/$DATABASE?sslmode=disable"; }

# The pid of a supervised process (empty when it is not running).
pid_of() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

# The pid of a name's supervisor (empty when it is not supervised).
supervisor_of() {
  local pid
  pid=$(cat "$RUN/$1.sup" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

# How often a name's process has exited so far (the supervisor's log says).
exits_of() { grep -c " $1 exited" "$LOGS/supervisor.log" 2>/dev/null || true; }

# Fails when a name's process keeps exiting while we wait for it: no point waiting longer.
crash_looping() {
  local name=$1 since=$2
  [ $(($(exits_of "$name") - since)) -ge 3 ] || return 1
  log "$name keeps exiting; the end of its log ($LOGS/$name.log):"
  tail -n 5 "$LOGS/$name.log" >&2
  return 0
}

# Waits (bounded) until an HTTP GET of a URL answers 2xx.
wait_http() {
  local what=$1 url=$2 secs=${3:-60} i since
  since=$(exits_of "$what")
  for i in $(seq 1 $((secs * 5))); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    crash_looping "$what" "$since" && return 1
    sleep 0.2
  done
  log "$what did not answer $url within $secs s; its log: $LOGS/$what.log"
  return 1
}

# Waits (bounded) until a name has a running process again (after a kill or restart).
wait_pid() {
  local name=$1 old=${2:-} secs=${3:-30} i pid
  for i in $(seq 1 $((secs * 10))); do
    pid=$(pid_of "$name")
    [ -n "$pid" ] && [ "$pid" != "$old" ] && return 0
    sleep 0.1
  done
  log "$name did not start again within $secs s; its log: $LOGS/$name.log"
  return 1
}

# Waits until a name is healthy: its port answers; a service replica's /readyz on its ops port;
# the ingress, a document any replica behind it serves.
wait_healthy() {
  local name=$1 secs=${2:-60} port
  port=$(port_of "$name")
  case "$name" in
    nats.*) wait_http "$name" "http://127.0.0.1:$(port_of "nats-monitor.${name#nats.}")/healthz?js-enabled-only=true" "$secs" ;;
    redis) local i; for i in $(seq 1 $((secs * 5))); do port_open "$port" && return 0; sleep 0.2; done
      log "redis did not listen on $port within $secs s; its log: $LOGS/redis.log"; return 1 ;;
    ingress) wait_http "$name" "http://127.0.0.1:$port/openapi.json" "$secs" ;;
    gateway) wait_http "$name" "http://127.0.0.1:$port/healthz" "$secs" ;;
    *) wait_http "$name" "http://127.0.0.1:$(port_of "ops.$name")/readyz" "$secs" ;;
  esac
}
