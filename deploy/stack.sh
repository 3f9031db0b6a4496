#!/usr/bin/env bash
# driftline's local stack: one Apache Kafka node in KRaft mode and one Redis, on 127.0.0.1.
#
#   deploy/stack.sh start    install what is missing, start both (idempotent), wait until each answers
#   deploy/stack.sh stop     stop what this script started
#   deploy/stack.sh status   say what answers where
#   deploy/stack.sh env      print the export lines for the servers in use
#
# Servers already running win: if KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are set and answer, they are
# used and nothing is started.  Everything downloaded or written lives under $DRIFTLINE_CACHE
# (default ~/.cache/driftline), outside the checkout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/kafka/pom.xml")
CACHE=${DRIFTLINE_CACHE:-$HOME/.cache/driftline}
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
RUN_DIR="$CACHE/run"
KAFKA_PORT=${DRIFTLINE_KAFKA_PORT:-9092}
CONTROLLER_PORT=${DRIFTLINE_KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${DRIFTLINE_REDIS_PORT:-6379}
KAFKA_START_TIMEOUT=${DRIFTLINE_KAFKA_START_TIMEOUT:-120}  # seconds without progress
KAFKA_START_MAX=${DRIFTLINE_KAFKA_START_MAX:-900}
REDIS_LOAD_TIMEOUT=${DRIFTLINE_REDIS_LOAD_TIMEOUT:-300}
# A fixed id keeps a re-formatted data dir compatible with the one before it.
CLUSTER_ID=ZHJpZnRsaW5lLWxvY2FsMQ

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

port_answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

first_host_port() { # "h1:p1,h2:p2" -> "h1 p1"
  local first=${1%%,*}
  first=${first#*://}
  printf '%s %s' "${first%:*}" "${first##*:}"
}

# ---------------------------------------------------------------- Kafka
kafka_install() {
  [ -f "$KAFKA_HOME/libs/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka $KAFKA_VERSION from Maven Central"
  command -v java >/dev/null || die "a Java runtime (17+) is needed to run Kafka"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_HOME/libs"
  mkdir -p "$KAFKA_HOME"
  mvn -B -q -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs.partial" >&2 \
    || die "Maven could not resolve Kafka $KAFKA_VERSION (see output above)"
  rm -rf "$KAFKA_HOME/libs" && mv "$KAFKA_HOME/libs.partial" "$KAFKA_HOME/libs"
}

kafka_java() { # main-class args...
  local main=$1; shift
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$RUN_DIR/kafka-logs" \
    -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" "$main" "$@"
}

kafka_write_config() {
  mkdir -p "$RUN_DIR/kafka-data" "$RUN_DIR/kafka-logs"
  cat >"$RUN_DIR/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$RUN_DIR/kafka-data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
EOF
}

kafka_pid_alive() {
  [ -f "$RUN_DIR/kafka.pid" ] && kill -0 "$(cat "$RUN_DIR/kafka.pid")" 2>/dev/null
}

kafka_start() {
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    # shellcheck disable=SC2046
    if port_answers $(first_host_port "$KAFKA_BOOTSTRAP_SERVERS"); then
      log "Kafka: using $KAFKA_BOOTSTRAP_SERVERS (already running)"; return 0
    fi
    die "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS does not answer"
  fi
  if kafka_pid_alive && port_answers 127.0.0.1 "$KAFKA_PORT"; then
    log "Kafka $KAFKA_VERSION: already running on 127.0.0.1:$KAFKA_PORT"; return 0
  fi
  if port_answers 127.0.0.1 "$KAFKA_PORT"; then
    log "Kafka: something already answers on 127.0.0.1:$KAFKA_PORT; using it"; return 0
  fi
  kafka_install
  kafka_write_config
  if [ ! -f "$RUN_DIR/kafka-data/meta.properties" ]; then
    log "formatting KRaft storage (cluster id $CLUSTER_ID)"
    kafka_java kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$RUN_DIR/server.properties" \
      --standalone >"$RUN_DIR/kafka-logs/format.log" 2>&1 \
      || { cat "$RUN_DIR/kafka-logs/format.log" >&2; die "Kafka storage format failed"; }
  fi
  log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT"
  nohup bash -c "$(declare -f kafka_java); RUN_DIR='$RUN_DIR' here='$here' KAFKA_HOME='$KAFKA_HOME' \
    kafka_java kafka.Kafka '$RUN_DIR/server.properties'" \
    >"$RUN_DIR/kafka-logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/kafka.pid"
  # KAFKA_START_TIMEOUT counts seconds without progress: a broker with many partitions on disk
  # spends minutes loading its logs, and says so in server.log line by line.
  local waited=0 idle=0 size=0 now
  until port_answers 127.0.0.1 "$KAFKA_PORT" && grep -q "Kafka Server started" "$RUN_DIR/kafka-logs/server.log" 2>/dev/null; do
    kafka_pid_alive || { tail -40 "$RUN_DIR/kafka-logs/stdout.log" >&2; die "Kafka exited during start-up"; }
    now=$(stat -c %s "$RUN_DIR/kafka-logs/server.log" 2>/dev/null || echo 0)
    if [ "$now" != "$size" ]; then size=$now; idle=0; else idle=$((idle + 1)); fi
    [ "$idle" -ge "$KAFKA_START_TIMEOUT" ] && { tail -40 "$RUN_DIR/kafka-logs/server.log" >&2; die "Kafka made no progress for ${KAFKA_START_TIMEOUT}s (started ${waited}s ago)"; }
    [ "$waited" -ge "$KAFKA_START_MAX" ] && { tail -40 "$RUN_DIR/kafka-logs/server.log" >&2; die "Kafka did not answer within ${KAFKA_START_MAX}s"; }
    [ $((waited % 30)) = 29 ] && log "Kafka is still starting (${waited}s): $(grep -o '[0-9]*/[0-9]* completed' "$RUN_DIR/kafka-logs/server.log" 2>/dev/null | tail -1 || true) logs loaded"
    sleep 1; waited=$((waited + 1))
  done
  log "Kafka answers on 127.0.0.1:$KAFKA_PORT (after ${waited}s)"
  local partitions
  partitions=$(find "$RUN_DIR/kafka-data" -mindepth 1 -maxdepth 1 -type d | wc -l)
  [ "$partitions" -gt 3000 ] && log "note: $RUN_DIR/kafka-data holds $partitions partitions, which slows every start; tests and benchmarks delete their own topics, so these are leftovers (stop the stack and remove that directory to start clean)"
  return 0
}

kafka_stop() {
  if kafka_pid_alive; then
    local pid; pid=$(cat "$RUN_DIR/kafka.pid")
    log "stopping Kafka (pid $pid)"
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN_DIR/kafka.pid"
}

# ---------------------------------------------------------------- Redis
redis_install() {
  command -v redis-server >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "redis-server is missing; install Debian's package: sudo apt-get install redis-server"
  log "installing Debian's redis-server"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >&2 \
    || die "apt-get could not install redis-server"
  # Debian's package may start a system instance on 6379; that one is fine to use as it is.
}

redis_start() {
  if [ -n "${REDIS_URL:-}" ]; then
    local hp=${REDIS_URL#*://}; hp=${hp#*@}; hp=${hp%%/*}
    if port_answers "${hp%:*}" "${hp##*:}"; then
      log "Redis: using $REDIS_URL (already running)"; return 0
    fi
    die "REDIS_URL=$REDIS_URL does not answer"
  fi
  redis_install
  if port_answers 127.0.0.1 "$REDIS_PORT"; then
    log "Redis: already answers on 127.0.0.1:$REDIS_PORT"
    # counters and checkpoints must survive a Redis restart: make sure the AOF is on
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config set appendonly yes >/dev/null 2>&1 || true
    return 0
  fi
  mkdir -p "$RUN_DIR/redis"
  log "starting redis-server on 127.0.0.1:$REDIS_PORT"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
    --dir "$RUN_DIR/redis" --pidfile "$RUN_DIR/redis.pid" --logfile "$RUN_DIR/redis/redis.log" \
    --save "" --appendonly yes --appendfsync everysec --maxmemory-policy noeviction >&2
  # 10 s to answer at all; while it answers LOADING (replaying a large append-only file) it
  # gets up to REDIS_LOAD_TIMEOUT seconds more
  local tries=0 loading=0 answer
  while :; do
    answer=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)
    if [ "$answer" = PONG ]; then
      log "Redis answers on 127.0.0.1:$REDIS_PORT"; return 0
    fi
    if [ "${answer%% *}" = LOADING ]; then
      loading=$((loading + 1))
      [ $((loading % 25)) = 1 ] && log "Redis is loading its append-only file ..."
      [ "$loading" -ge $((REDIS_LOAD_TIMEOUT * 5)) ] && break
    else
      tries=$((tries + 1))
      [ "$tries" -ge 50 ] && break
    fi
    sleep 0.2
  done
  die "redis-server did not answer on 127.0.0.1:$REDIS_PORT (see $RUN_DIR/redis/redis.log)"
}

redis_stop() {
  if [ -f "$RUN_DIR/redis.pid" ] && kill -0 "$(cat "$RUN_DIR/redis.pid")" 2>/dev/null; then
    local pid; pid=$(cat "$RUN_DIR/redis.pid")
    log "stopping Redis (pid $pid)"
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$pid"
    # wait for the process itself (it finishes writing its append-only file first)
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && die "Redis (pid $pid) did not stop within 30s"
  fi
  rm -f "$RUN_DIR/redis.pid"
}

print_env() {
  echo "export KAFKA_BOOTSTRAP_SERVERS=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
  echo "export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"
}

mkdir -p "$RUN_DIR"
case "${1:-}" in
  start) redis_start; kafka_start ;;
  stop) kafka_stop; redis_stop ;;
  status)
    if port_answers 127.0.0.1 "$KAFKA_PORT"; then echo "kafka: up on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: down"; fi
    if port_answers 127.0.0.1 "$REDIS_PORT"; then echo "redis: up on 127.0.0.1:$REDIS_PORT"; else echo "redis: down"; fi ;;
  env) print_env ;;
  restart-redis)
    # only the Redis this script started (its pid file): REDIS_URL, if exported, names that one
    [ -f "$RUN_DIR/redis.pid" ] || die "restart-redis restarts the Redis that '$0 start' started; none is running"
    redis_stop; unset REDIS_URL; redis_start ;;
  *) echo "usage: $0 start|stop|status|env|restart-redis" >&2; exit 2 ;;
esac
