#!/usr/bin/env bash
# Starts the servers the runtime's tests talk to — Redis, RabbitMQ, NATS (with JetStream) and
# etcd — on loopback, from Debian's packages. Idempotent: a server that already answers is left
# alone. When one is missing and we are root, it is installed with apt. Exits non-zero naming
# what did not come up. It also installs Chromium, which the browser client's test drives.
set -u

log() { printf 'brokers: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

apt_updated=0
install_pkgs() {
  if [ "$(id -u)" != 0 ] || ! have apt-get; then
    log "cannot install $* (need root and apt-get)"; return 1
  fi
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do port_open "$2" && return 0; sleep 0.2; done
  log "$1 did not answer on 127.0.0.1:$2 within $3 s"; return 1
}

failed=()

# --- Redis ---------------------------------------------------------------------------------
if port_open 6379; then log "redis already up on 6379"; else
  have redis-server || install_pkgs redis-server || true
  if have redis-server; then
    mkdir -p /tmp/fan-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/fan-redis --logfile /tmp/fan-redis/redis.log >/dev/null 2>&1 || true
  fi
  wait_port redis 6379 20 || failed+=(redis)
fi

# --- RabbitMQ ------------------------------------------------------------------------------
if port_open 5672; then log "rabbitmq already up on 5672"; else
  have rabbitmq-server || install_pkgs rabbitmq-server || true
  if have rabbitmq-server; then rabbitmq-server -detached >/dev/null 2>&1 || true; fi
  wait_port rabbitmq 5672 90 || failed+=(rabbitmq)
fi

# --- NATS (JetStream on) ---------------------------------------------------------------------
# The first line a NATS server sends is its INFO, which says whether JetStream is on.
nats_info() { timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222; IFS= read -r line <&3; printf "%s" "$line"' 2>/dev/null; }
nats_bin() { command -v nats-server 2>/dev/null || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; }; }
if port_open 4222; then
  if nats_info | grep -q '"jetstream":true'; then log "nats already up on 4222 (JetStream on)"
  else log "a server answers on 4222 without JetStream (start nats-server with -js)"; failed+=(nats-jetstream); fi
else
  [ -n "$(nats_bin)" ] || install_pkgs nats-server || true
  if [ -n "$(nats_bin)" ]; then
    data="${FAN_NATS_DATA:-/tmp/fan-nats}"
    mkdir -p "$data"
    setsid nohup "$(nats_bin)" -a 127.0.0.1 -p 4222 -js -sd "$data/jetstream" \
      >"$data/nats.log" 2>&1 </dev/null &
  fi
  wait_port nats 4222 20 || failed+=(nats)
fi

# --- etcd ----------------------------------------------------------------------------------
if port_open 2379; then log "etcd already up on 2379"; else
  have etcd || install_pkgs etcd-server etcd-client || true
  if have etcd; then
    data="${FAN_ETCD_DATA:-/tmp/fan-etcd}"
    mkdir -p "$data"
    # setsid + nohup: etcd must outlive the shell (and CI step) that started it.
    ETCD_UNSUPPORTED_ARCH="${ETCD_UNSUPPORTED_ARCH:-}" setsid nohup etcd --name fan-dev \
      --data-dir "$data/data" \
      --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
      --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
      --initial-cluster fan-dev=http://127.0.0.1:2380 \
      >"$data/etcd.log" 2>&1 </dev/null &
  fi
  wait_port etcd 2379 30 || failed+=(etcd)
fi

# --- Chromium (not a server: the browser client's test drives it headless) -------------------
if [ -x /usr/bin/chromium ] || have chromium; then log "chromium already installed"; else
  install_pkgs chromium || true
  if [ -x /usr/bin/chromium ] || have chromium; then log "chromium installed"; else failed+=(chromium); fi
fi

if [ ${#failed[@]} -gt 0 ]; then log "not running: ${failed[*]}"; exit 1; fi
log "redis 127.0.0.1:6379, rabbitmq 127.0.0.1:5672, nats 127.0.0.1:4222, etcd 127.0.0.1:2379 are up; chromium is installed"
