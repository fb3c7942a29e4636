#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on loopback for the fleet tests and bench (issue 16).
#
# Debian's rabbitmq-server (3.10, MQTT 3.1.1 plugin). Each node has its own data folders under
# $POS_RMQ_DIR (owned by the user the nodes run as: `rabbitmq` when started by root, else the
# caller), its own ports, the cluster's shared Erlang cookie, rabbitmq_mqtt enabled and
# mqtt.durable_queue_type = quorum, so a terminal's persistent session queue (clean session =
# false) is replicated on the three nodes and survives the loss of one. Nothing listens beyond
# 127.0.0.1; the nodes use their own epmd port, so a system RabbitMQ is not disturbed.
#
# Usage:  deploy/rabbitmq-cluster.sh start|stop|kill N|start-node N|stop-node N|urls|plain-urls|amqp-urls|add-device ID|status
#
#   start         create (or reuse) the folders, start node 1, join nodes 2 and 3 to it, add the
#                 users; prints one line per node: `node N mqtt://127.0.0.1:PORT [mqtts://…]`
#   stop          stop every node and the cluster's epmd (the folders stay; `rm -rf` them)
#   kill N        SIGKILL node N (1–3): a node crash; `start-node N` brings it back
#   stop-node N   stop node N cleanly (a rolling restart: stop-node, start-node, one at a time)
#   start-node N  start node N again; it rejoins the cluster from its data folder
#   urls          print the MQTT URLs of the nodes, comma-separated (the mqtts:// ones with TLS)
#   plain-urls    print the plaintext mqtt:// URLs (with TLS: the cloud side's loopback listener,
#                 password login only)
#   amqp-urls     print the AMQP 0-9-1 URLs of the nodes as the `cloud-core` user, comma-separated:
#                 the cloud core instances consume one quorum queue there (simulator/cloud-amqp.ts)
#
# Environment:
#   POS_RMQ_DIR        data folders, default /tmp/pos-rmq-cluster
#   POS_RMQ_PORT_BASE  first port, default 35600: node N uses BASE+10N+0 AMQP, +1 MQTT, +2 MQTTS,
#                      +3 Erlang distribution; BASE+9 is the cluster's epmd
#   POS_RMQ_TLS_DIR    a folder with ca.pem, server.pem, server.key: adds an mqtts:// listener
#                      per node with mutual TLS, the client certificate's CN as the username
#                      (mqtt.ssl_cert_login), and no anonymous login
#   POS_RMQ_USER       the user the nodes run as when started by root, default rabbitmq
#   POS_RMQ_START_TIMEOUT  seconds a node may take to report running, default 300
#
# Users (vhost /): `cloud-core` (password `cloud-core`, may read and write every topic) for the
# cloud core: it may configure, read and write only queues named cloud-core* (its AMQP quorum
# queue) and mqtt-subscription-cloud-core* (the sessions of MQTT client ids cloud-core*), and
# read and write amq.topic (bind its queue there, publish the downlinks). With TLS, each device
# logs in by certificate and `add-device ID` gives it the topic permissions of the Mosquitto ACL
# (deploy/mosquitto): write pos/v1/ID/up/..., read pos/v1/ID/down/... only. Without TLS,
# anonymous MQTT logins map to `guest` (loopback only).
#
#   add-device ID   create the device user ID (certificate login) with its topic permissions
set -euo pipefail

DIR=${POS_RMQ_DIR:-/tmp/pos-rmq-cluster}
BASE=${POS_RMQ_PORT_BASE:-35600}
TLS_DIR=${POS_RMQ_TLS_DIR:-}
RUN_AS=${POS_RMQ_USER:-rabbitmq}
START_TIMEOUT=${POS_RMQ_START_TIMEOUT:-300}
RMQ_BIN=/usr/lib/rabbitmq/bin
EPMD_PORT=$((BASE + 9))
HOST=localhost

die() {
  echo "rabbitmq-cluster: $*" >&2
  exit 1
}

[ -x "$RMQ_BIN/rabbitmq-server" ] ||
  die "rabbitmq-server is not installed: apt-get install -y rabbitmq-server (Debian 12 has 3.10)"

port() { echo $((BASE + 10 * $1 + $2)); }
nodename() { echo "pos$1@$HOST"; }

# Runs a command as the nodes' user with the node's environment.
as_node() {
  local n=$1
  shift
  local env=(
    "HOME=$DIR/home"
    "ERL_EPMD_PORT=$EPMD_PORT"
    "RABBITMQ_NODENAME=$(nodename "$n")"
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
    "RABBITMQ_NODE_PORT=$(port "$n" 0)"
    "RABBITMQ_DIST_PORT=$(port "$n" 3)"
    "RABBITMQ_MNESIA_BASE=$DIR/n$n/mnesia"
    "RABBITMQ_LOG_BASE=$DIR/n$n/log"
    "RABBITMQ_PID_FILE=$DIR/n$n/pid"
    "RABBITMQ_CONFIG_FILE=$DIR/n$n/rabbitmq.conf"
    "RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins"
    "RABBITMQ_ADVANCED_CONFIG_FILE=$DIR/n$n/advanced.config"
    "PATH=$PATH"
  )
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$RUN_AS" -- env -i "${env[@]}" "$@"
  else
    env -i "${env[@]}" "$@"
  fi
}

ctl() {
  local n=$1
  shift
  as_node "$n" "$RMQ_BIN/rabbitmqctl" -n "$(nodename "$n")" "$@"
}

write_config() {
  local n=$1
  mkdir -p "$DIR/n$n/mnesia" "$DIR/n$n/log"
  {
    echo "listeners.tcp.default = 127.0.0.1:$(port "$n" 0)"
    echo "mqtt.listeners.tcp.default = 127.0.0.1:$(port "$n" 1)"
    echo "mqtt.durable_queue_type = quorum"
    echo "mqtt.vhost = /"
    echo "mqtt.exchange = amq.topic"
    echo "loopback_users = none"
    # Nodes 2 and 3 join node 1 at their first boot (peer discovery from this list).
    echo "cluster_formation.peer_discovery_backend = classic_config"
    for m in 1 2 3; do echo "cluster_formation.classic_config.nodes.$m = $(nodename "$m")"; done
    # A lost node is noticed by its peers within seconds (default 60 s of net ticks).
    echo "log.console = false"
    echo "log.file.level = warning"
    # A small machine: no disk-space alarm over a few GB of free space in /tmp.
    echo "disk_free_limit.absolute = 50MB"
    if [ -n "$TLS_DIR" ]; then
      echo "mqtt.allow_anonymous = false"
      echo "mqtt.listeners.ssl.default = 127.0.0.1:$(port "$n" 2)"
      echo "mqtt.ssl_cert_login = true"
      echo "ssl_cert_login_from = common_name"
      echo "ssl_options.cacertfile = $DIR/tls/ca.pem"
      echo "ssl_options.certfile = $DIR/tls/server.pem"
      echo "ssl_options.keyfile = $DIR/tls/server.key"
      echo "ssl_options.verify = verify_peer"
      echo "ssl_options.fail_if_no_peer_cert = true"
    else
      echo "mqtt.allow_anonymous = true"
      echo "mqtt.default_user = guest"
      echo "mqtt.default_pass = guest"
    fi
  } >"$DIR/n$n/rabbitmq.conf"
  # Net tick 4 s (default 60 s): a killed node is taken as down by its peers in 4–8 s, so the
  # quorum queues it led elect a new leader in time for failover within 10 s.
  echo "[{kernel, [{net_ticktime, 4}]}]." >"$DIR/n$n/advanced.config"
}

prepare() {
  mkdir -p "$DIR/home"
  if [ ! -f "$DIR/home/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$DIR/home/.erlang.cookie"
  fi
  chmod 400 "$DIR/home/.erlang.cookie"
  echo "[rabbitmq_mqtt]." >"$DIR/enabled_plugins"
  if [ -n "$TLS_DIR" ]; then
    mkdir -p "$DIR/tls"
    cp "$TLS_DIR/ca.pem" "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$DIR/tls/"
  fi
  for n in 1 2 3; do write_config "$n"; done
  if [ "$(id -u)" = 0 ]; then chown -R "$RUN_AS:" "$DIR"; fi
  chmod 700 "$DIR"
}

start_node() {
  local n=$1
  if node_running "$n"; then return 0; fi
  # Every MQTT connection takes a socket slot of RabbitMQ's file handle cache, sized from the
  # soft open-files limit (1024 after runuser's PAM session): near it, new connections wait in
  # the TCP handshake with no error, so a fleet of ~800 terminals stalls. The node raises its
  # soft limit to its hard one first.
  as_node "$n" bash -c 'ulimit -n "$(ulimit -Hn)"; exec "$0"' "$RMQ_BIN/rabbitmq-server" >"$DIR/n$n/log/console.log" 2>&1 </dev/null &
  disown || true
  # A restarted node recovers every quorum queue (a fleet's sessions) before it reports running:
  # give it longer than a first boot.
  ctl "$n" wait "$DIR/n$n/pid" --timeout "$START_TIMEOUT" >/dev/null || {
    tail -n 20 "$DIR/n$n/log/$(nodename "$n").log" "$DIR/n$n/log/console.log" >&2 2>/dev/null || true
    die "node $n did not start within $START_TIMEOUT s; see $DIR/n$n/log/"
  }
}

node_running() {
  local pidfile="$DIR/n$1/pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

urls() {
  local list=()
  for n in 1 2 3; do list+=("mqtt://127.0.0.1:$(port "$n" 1)"); done
  (
    IFS=,
    echo "${list[*]}"
  )
}

amqp_urls() {
  local list=()
  for n in 1 2 3; do list+=("amqp://cloud-core:cloud-core@127.0.0.1:$(port "$n" 0)"); done
  (
    IFS=,
    echo "${list[*]}"
  )
}

tls_urls() {
  local list=()
  for n in 1 2 3; do list+=("mqtts://127.0.0.1:$(port "$n" 2)"); done
  (
    IFS=,
    echo "${list[*]}"
  )
}

cmd=${1:-}
case "$cmd" in
start)
  prepare
  start_node 1
  # Nodes 2 and 3 boot together; each finds node 1 running and joins it.
  start_node 2 &
  start_node 3 &
  wait
  for n in 2 3; do
    # A node that formed a cluster of its own (a race at first boot) is joined by hand.
    if ! ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(nodename "$n")\""; then
      ctl "$n" stop_app >/dev/null
      ctl "$n" reset >/dev/null
      ctl "$n" join_cluster "$(nodename 1)" >/dev/null
      ctl "$n" start_app >/dev/null
    fi
  done
  ctl 1 add_user cloud-core cloud-core >/dev/null 2>&1 || true
  cloud_queues='cloud-core.*|mqtt-subscription-cloud-core.*'
  ctl 1 set_permissions -p / cloud-core "^($cloud_queues)\$" "^(amq\.topic|$cloud_queues)\$" "^(amq\.topic|$cloud_queues)\$" >/dev/null
  for n in 1 2 3; do
    if [ -n "$TLS_DIR" ]; then
      echo "node $n mqtt://127.0.0.1:$(port "$n" 1) mqtts://127.0.0.1:$(port "$n" 2) $(nodename "$n")"
    else
      echo "node $n mqtt://127.0.0.1:$(port "$n" 1) $(nodename "$n")"
    fi
  done
  ;;
add-device)
  id=${2:?device id}
  # Certificate login: the user needs no password. MQTT topics map to routing keys with . for /.
  ctl 1 add_user "$id" "$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/dev/null 2>&1 || true
  ctl 1 clear_password "$id" >/dev/null
  ctl 1 set_permissions -p / "$id" "^mqtt-subscription-$id" "^(amq\.topic|mqtt-subscription-$id.*)$" "^(amq\.topic|mqtt-subscription-$id.*)$" >/dev/null
  ctl 1 set_topic_permissions -p / "$id" amq.topic "^pos\.v1\.$id\.(up\..*|status)$" "^pos\.v1\.$id\.down\..*$" >/dev/null
  ;;
kill)
  n=${2:?node number}
  pidfile="$DIR/n$n/pid"
  [ -f "$pidfile" ] || die "node $n has no pid file"
  kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  ;;
stop-node)
  n=${2:?node number}
  ctl "$n" stop >/dev/null 2>&1 || true
  ;;
start-node)
  n=${2:?node number}
  start_node "$n"
  ;;
stop)
  for n in 3 2 1; do
    if node_running "$n"; then ctl "$n" stop >/dev/null 2>&1 || kill -9 "$(cat "$DIR/n$n/pid")" 2>/dev/null || true; fi
  done
  # The cluster's own epmd (on its own port); a system epmd is left alone.
  ERL_EPMD_PORT=$EPMD_PORT epmd -kill >/dev/null 2>&1 || true
  ;;
urls)
  if [ -n "$TLS_DIR" ]; then tls_urls; else urls; fi
  ;;
plain-urls)
  urls
  ;;
amqp-urls)
  amqp_urls
  ;;
status)
  ctl 1 cluster_status
  ;;
*)
  # The header above, up to `set -euo pipefail`.
  awk 'NR > 1 && /^set -euo/ { exit } NR > 1' "$0"
  exit 2
  ;;
esac
