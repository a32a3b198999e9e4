#!/usr/bin/env bash
# Starts, on loopback with private ports and data folders under $FAN_CLUSTERS_DIR
# (/tmp/fan-clusters), the clusters test/clusters/ kills members of:
#   etcd        3 members   clients 23791-23793, peers 23801-23803
#   Redis       Cluster of 3 masters + 1 replica each on 27001-27006
#   Sentinel    master 27101, replica 27102, sentinels 27111-27113 (master name fan-master)
#   RabbitMQ    3 nodes rabbit-fan{1,2,3}@localhost, AMQP 25701-25703, dist 25711-25713
#   NATS        3 nodes with JetStream, clients 24221-24223, routes 24231-24233
# from Debian's packages. Idempotent (a member that answers is left alone; a member that was
# stopped is restarted with its data, rejoining its cluster). `down` stops only what `up`
# started (pid files under the data folder); the machine's default servers on 6379, 5672,
# 4222 and 2379 are never touched.
#
#   bash scripts/clusters.sh up|down|status
#   bash scripts/clusters.sh start|stop <member>   # one member, e.g. etcd2, redis27003,
#                                                  # sentinel-master, rabbit2, nats3
#   bash scripts/clusters.sh rabbitmqctl <1|2|3> ...   # rabbitmqctl on one node
set -u

base="${FAN_CLUSTERS_DIR:-/tmp/fan-clusters}"
log() { printf 'clusters: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }
wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do port_open "$2" && return 0; sleep 0.2; done
  log "$1 did not answer on 127.0.0.1:$2 within $3 s"; return 1
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop_pidfile() { # pidfile name
  if alive "$1"; then
    local pid; pid="$(cat "$1")"
    kill "$pid" 2>/dev/null
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    log "stopped $2 (pid $pid)"
  fi
  rm -f "$1"
}

ETCD_NAMES=(etcd1 etcd2 etcd3)
ETCD_CLIENT=(23791 23792 23793)
ETCD_PEER=(23801 23802 23803)
REDIS_CLUSTER_PORTS=(27001 27002 27003 27004 27005 27006)
SENTINEL_MASTER=27101
SENTINEL_REPLICA=27102
SENTINEL_PORTS=(27111 27112 27113)
RABBIT_AMQP=(25701 25702 25703)
RABBIT_DIST=(25711 25712 25713)
NATS_CLIENT=(24221 24222 24223)
NATS_ROUTE=(24231 24232 24233)
COOKIE="fan-clusters-cookie-7c1e"

# --- etcd ----------------------------------------------------------------------------------
etcd_start() { # index
  local i="$1" name="${ETCD_NAMES[$1]}" dir="$base/etcd/${ETCD_NAMES[$1]}"
  port_open "${ETCD_CLIENT[$i]}" && return 0
  have etcd || { log "etcd is not installed (apt-get install etcd-server)"; return 1; }
  mkdir -p "$dir"
  local cluster="" j state=new
  for j in 0 1 2; do cluster+="${ETCD_NAMES[$j]}=http://127.0.0.1:${ETCD_PEER[$j]},"; done
  [ -d "$dir/data/member" ] && state=existing
  setsid nohup etcd --name "$name" --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER[$i]}" \
    --initial-cluster "${cluster%,}" --initial-cluster-token fan-clusters \
    --initial-cluster-state "$state" \
    --heartbeat-interval 100 --election-timeout 1000 \
    >>"$dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
}
etcd_up() {
  local i ok=0
  for i in 0 1 2; do etcd_start "$i" || ok=1; done
  for i in 0 1 2; do wait_port "${ETCD_NAMES[$i]}" "${ETCD_CLIENT[$i]}" 30 || ok=1; done
  return $ok
}

# --- Redis Cluster -------------------------------------------------------------------------
redis_node_start() { # port [extra args...]
  local port="$1"; shift
  local dir="$base/redis/$port"
  port_open "$port" && return 0
  have redis-server || { log "redis-server is not installed (apt-get install redis-server)"; return 1; }
  mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --pidfile "$dir/pid" --logfile "$dir/redis.log" --save "" --appendonly no "$@" >/dev/null
}
redis_cluster_up() {
  local p ok=0
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do
    redis_node_start "$p" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 --cluster-replica-validity-factor 0 || ok=1
  done
  for p in "${REDIS_CLUSTER_PORTS[@]}"; do wait_port "redis $p" "$p" 20 || ok=1; done
  [ $ok = 0 ] || return 1
  if ! redis-cli -p 27001 cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
    if [ "$(redis-cli -p 27001 cluster info | sed -n 's/^cluster_known_nodes:\([0-9]*\).*/\1/p')" = 1 ]; then
      local hosts=()
      for p in "${REDIS_CLUSTER_PORTS[@]}"; do hosts+=("127.0.0.1:$p"); done
      redis-cli --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes >"$base/redis/create.log" 2>&1 ||
        { log "redis-cli --cluster create failed: see $base/redis/create.log"; return 1; }
    fi
    local i
    for ((i = 0; i < 100; i++)); do
      redis-cli -p 27001 cluster info 2>/dev/null | grep -q 'cluster_state:ok' && return 0
      sleep 0.2
    done
    log "Redis Cluster on 27001-27006 is not in state ok"; return 1
  fi
}

# --- Redis Sentinel ------------------------------------------------------------------------
sentinel_start() { # port
  local port="$1" dir="$base/sentinel/$1"
  port_open "$port" && return 0
  mkdir -p "$dir"
  if [ ! -f "$dir/sentinel.conf" ]; then
    cat >"$dir/sentinel.conf" <<EOF
bind 127.0.0.1
port $port
dir $dir
sentinel monitor fan-master 127.0.0.1 $SENTINEL_MASTER 2
sentinel down-after-milliseconds fan-master 2000
sentinel failover-timeout fan-master 10000
sentinel parallel-syncs fan-master 1
EOF
  fi
  redis-server "$dir/sentinel.conf" --sentinel --daemonize yes --pidfile "$dir/pid" \
    --logfile "$dir/sentinel.log" >/dev/null
}
sentinel_data_start() { # port
  local port="$1" dir="$base/sentinel/$1"
  port_open "$port" && return 0
  # A restarted member comes back as a replica of whoever the sentinels say is master now.
  local master_port="" args=()
  if port_open "${SENTINEL_PORTS[0]}"; then
    master_port="$(redis-cli -p "${SENTINEL_PORTS[0]}" sentinel get-master-addr-by-name fan-master 2>/dev/null | sed -n 2p)"
  fi
  if [ -n "$master_port" ] && [ "$master_port" != "$port" ]; then
    args=(--replicaof 127.0.0.1 "$master_port")
  elif [ -z "$master_port" ] && [ "$port" = "$SENTINEL_REPLICA" ]; then
    args=(--replicaof 127.0.0.1 "$SENTINEL_MASTER")
  fi
  mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --pidfile "$dir/pid" --logfile "$dir/redis.log" --save "" --appendonly no "${args[@]}" >/dev/null
}
sentinel_up() {
  local p ok=0
  # Sentinels first: after a failover their config names the current master, and the data
  # nodes start as that master and its replica.
  for p in "${SENTINEL_PORTS[@]}"; do sentinel_start "$p" || ok=1; done
  for p in "${SENTINEL_PORTS[@]}"; do wait_port "sentinel $p" "$p" 20 || ok=1; done
  sentinel_data_start "$SENTINEL_MASTER" || ok=1
  sentinel_data_start "$SENTINEL_REPLICA" || ok=1
  for p in "$SENTINEL_MASTER" "$SENTINEL_REPLICA"; do wait_port "sentinel data $p" "$p" 20 || ok=1; done
  return $ok
}

# --- RabbitMQ ------------------------------------------------------------------------------
rabbit_env() { # index -> exports for one node
  local i="$1" n=$(($1 + 1)) dir="$base/rabbit/rabbit-fan$(($1 + 1))"
  export HOME="$base/rabbit"
  export RABBITMQ_NODENAME="rabbit-fan$n@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="${RABBIT_AMQP[$i]}"
  export RABBITMQ_DIST_PORT="${RABBIT_DIST[$i]}"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/pid"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export ERL_EPMD_ADDRESS=127.0.0.1
}
rabbitctl() { # index args...
  local i="$1"; shift
  (rabbit_env "$i"; /usr/lib/rabbitmq/bin/rabbitmqctl -n "rabbit-fan$((i + 1))@localhost" "$@")
}
rabbit_start() { # index
  local i="$1" dir="$base/rabbit/rabbit-fan$(($1 + 1))"
  port_open "${RABBIT_AMQP[$i]}" && return 0
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || { log "rabbitmq-server is not installed (apt-get install rabbitmq-server)"; return 1; }
  mkdir -p "$dir/log" "$dir/mnesia"
  if [ ! -f "$base/rabbit/.erlang.cookie" ]; then
    printf '%s' "$COOKIE" >"$base/rabbit/.erlang.cookie"; chmod 400 "$base/rabbit/.erlang.cookie"
  fi
  [ -f "$dir/rabbitmq.conf" ] || cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:${RABBIT_AMQP[$i]}
loopback_users = none
cluster_partition_handling = pause_minority
EOF
  [ -f "$dir/enabled_plugins" ] || echo '[].' >"$dir/enabled_plugins"
  [ -f "$dir/rabbitmq-env.conf" ] || : >"$dir/rabbitmq-env.conf"
  (
    rabbit_env "$i"
    export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
    cd "$dir" || exit 1
    exec setsid nohup /usr/lib/rabbitmq/bin/rabbitmq-server
  ) >>"$dir/log/startup.log" 2>&1 </dev/null &
}
rabbit_up() {
  local i ok=0
  for i in 0 1 2; do rabbit_start "$i" || ok=1; done
  for i in 0 1 2; do wait_port "rabbit-fan$((i + 1))" "${RABBIT_AMQP[$i]}" 120 || ok=1; done
  [ $ok = 0 ] || return 1
  for i in 1 2; do
    if ! rabbitctl "$i" cluster_status 2>/dev/null | grep -q 'rabbit-fan1@localhost'; then
      log "joining rabbit-fan$((i + 1)) to rabbit-fan1"
      rabbitctl "$i" stop_app >/dev/null &&
        rabbitctl "$i" join_cluster rabbit-fan1@localhost >/dev/null &&
        rabbitctl "$i" start_app >/dev/null || { log "rabbit-fan$((i + 1)) did not join"; ok=1; }
    fi
  done
  return $ok
}

# --- NATS ----------------------------------------------------------------------------------
nats_start() { # index
  local i="$1" n=$(($1 + 1)) dir="$base/nats/nats$(($1 + 1))"
  port_open "${NATS_CLIENT[$i]}" && return 0
  have nats-server || { log "nats-server is not installed (apt-get install nats-server)"; return 1; }
  mkdir -p "$dir/js"
  local routes="" j
  for j in 0 1 2; do [ "$j" = "$i" ] || routes+="\"nats-route://127.0.0.1:${NATS_ROUTE[$j]}\", "; done
  cat >"$dir/nats.conf" <<EOF
server_name: fan-nats$n
listen: 127.0.0.1:${NATS_CLIENT[$i]}
jetstream { store_dir: "$dir/js", max_memory_store: 256MB, max_file_store: 1GB }
cluster {
  name: fan-clusters
  listen: 127.0.0.1:${NATS_ROUTE[$i]}
  routes: [ ${routes%, } ]
}
EOF
  setsid nohup nats-server -c "$dir/nats.conf" -P "$dir/pid" >>"$dir/nats.log" 2>&1 </dev/null &
}
nats_up() {
  local i ok=0
  for i in 0 1 2; do nats_start "$i" || ok=1; done
  for i in 0 1 2; do wait_port "nats$((i + 1))" "${NATS_CLIENT[$i]}" 30 || ok=1; done
  return $ok
}

# --- one member ----------------------------------------------------------------------------
member_pidfile() { # member -> pidfile
  case "$1" in
    etcd[123]) echo "$base/etcd/$1/pid" ;;
    redis270*) echo "$base/redis/${1#redis}/pid" ;;
    sentinel-master) echo "$base/sentinel/$SENTINEL_MASTER/pid" ;;
    sentinel-replica) echo "$base/sentinel/$SENTINEL_REPLICA/pid" ;;
    sentinel271*) echo "$base/sentinel/${1#sentinel}/pid" ;;
    redis271*) echo "$base/sentinel/${1#redis}/pid" ;;
    rabbit[123]) echo "$base/rabbit/rabbit-fan${1#rabbit}/pid" ;;
    nats[123]) echo "$base/nats/$1/pid" ;;
    *) return 1 ;;
  esac
}
member_start() {
  case "$1" in
    etcd[123]) etcd_start $((${1#etcd} - 1)) && wait_port "$1" "${ETCD_CLIENT[$((${1#etcd} - 1))]}" 30 ;;
    redis270*) redis_node_start "${1#redis}" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 --cluster-replica-validity-factor 0 && wait_port "$1" "${1#redis}" 20 ;;
    sentinel-master) sentinel_data_start "$SENTINEL_MASTER" && wait_port "$1" "$SENTINEL_MASTER" 20 ;;
    sentinel-replica) sentinel_data_start "$SENTINEL_REPLICA" && wait_port "$1" "$SENTINEL_REPLICA" 20 ;;
    redis271*) sentinel_data_start "${1#redis}" && wait_port "$1" "${1#redis}" 20 ;;
    sentinel271*) sentinel_start "${1#sentinel}" && wait_port "$1" "${1#sentinel}" 20 ;;
    rabbit[123]) rabbit_start $((${1#rabbit} - 1)) && wait_port "$1" "${RABBIT_AMQP[$((${1#rabbit} - 1))]}" 120 ;;
    nats[123]) nats_start $((${1#nats} - 1)) && wait_port "$1" "${NATS_CLIENT[$((${1#nats} - 1))]}" 30 ;;
    *) log "unknown member $1"; return 2 ;;
  esac
}

# --- commands ------------------------------------------------------------------------------
status() {
  local line p i bad=0
  check() { if port_open "$2"; then line+=" $1:up"; else line+=" $1:DOWN"; bad=1; fi; }
  line="etcd"; for i in 0 1 2; do check "${ETCD_CLIENT[$i]}" "${ETCD_CLIENT[$i]}"; done; echo "$line"
  line="redis-cluster"; for p in "${REDIS_CLUSTER_PORTS[@]}"; do check "$p" "$p"; done
  line+=" ($(redis-cli -p 27001 cluster info 2>/dev/null | grep -o 'cluster_state:[a-z]*' || echo 'cluster_state:?'))"; echo "$line"
  line="sentinel"; for p in "$SENTINEL_MASTER" "$SENTINEL_REPLICA" "${SENTINEL_PORTS[@]}"; do check "$p" "$p"; done
  line+=" (master $(redis-cli -p "${SENTINEL_PORTS[0]}" sentinel get-master-addr-by-name fan-master 2>/dev/null | tr '\n' ':' | sed 's/:$//'))"; echo "$line"
  line="rabbitmq"; for i in 0 1 2; do check "${RABBIT_AMQP[$i]}" "${RABBIT_AMQP[$i]}"; done; echo "$line"
  line="nats"; for i in 0 1 2; do check "${NATS_CLIENT[$i]}" "${NATS_CLIENT[$i]}"; done; echo "$line"
  return $bad
}

down() {
  local f
  for f in "$base"/etcd/*/pid "$base"/redis/*/pid "$base"/sentinel/*/pid "$base"/nats/*/pid; do
    [ -f "$f" ] && stop_pidfile "$f" "${f%/pid}"
  done
  for f in "$base"/rabbit/*/pid; do
    [ -f "$f" ] || continue
    if alive "$f"; then
      local i; i="$(basename "$(dirname "$f")")"; i="${i#rabbit-fan}"
      rabbitctl $((i - 1)) stop >/dev/null 2>&1 || true
    fi
    stop_pidfile "$f" "${f%/pid}"
  done
  return 0
}

mkdir -p "$base"
case "${1:-}" in
  up)
    failed=()
    etcd_up || failed+=(etcd)
    redis_cluster_up || failed+=(redis-cluster)
    sentinel_up || failed+=(sentinel)
    rabbit_up || failed+=(rabbitmq)
    nats_up || failed+=(nats)
    if [ ${#failed[@]} -gt 0 ]; then log "not running: ${failed[*]}"; status; exit 1; fi
    status
    ;;
  down) down ;;
  status) status ;;
  start) member_start "${2:?member}" ;;
  stop)
    f="$(member_pidfile "${2:?member}")" || { log "unknown member $2"; exit 2; }
    stop_pidfile "$f" "$2"
    ;;
  kill)
    f="$(member_pidfile "${2:?member}")" || { log "unknown member $2"; exit 2; }
    alive "$f" && kill -9 "$(cat "$f")" && log "killed $2 (pid $(cat "$f"))"
    rm -f "$f"
    ;;
  rabbitmqctl) # rabbitmqctl <1|2|3> args...: rabbitmqctl against one node, with the cluster's cookie
    n="${2:?node 1, 2 or 3}"; shift 2
    rabbitctl $((n - 1)) "$@"
    ;;
  *) echo "usage: $0 up|down|status | start|stop|kill <member> | rabbitmqctl <n> args..." >&2; exit 2 ;;
esac
