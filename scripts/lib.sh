# Helpers shared by the bench scripts (sourced, not run; ROOT and WORK set).
SECRET=bench-secret-0123456789abcdef-0123456789

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port, log: poll until the server accepts (at most 20 s)
  for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  cat "$2" >&2; return 1
}

build_bins() { # sets BIN: release unless BENCH_PROFILE=debug; BENCH_BIN=dir uses binaries built before
  if [ -n "${BENCH_BIN:-}" ]; then BIN=$BENCH_BIN; return; fi
  local profile=${BENCH_PROFILE:-release}
  if [ "$profile" = release ]; then cargo build --release --locked --bins >&2; else cargo build --locked --bins >&2; fi
  BIN="$ROOT/target/$profile"
}

start_tandem() { # port name [VAR=value ...]: limits off, files under $WORK/name, log $WORK/name.log; pid in $!
  # (TANDEM_WRAP: a command to run the server under, such as valgrind)
  local port=$1 name=$2
  shift 2
  (cd "$WORK" && exec env PORT="$port" JWT_SECRET="$SECRET" TURN_MODE=off SFU_UDP_PORT=0 LOG_LEVEL=warn SOCKET_EVENT_LIMIT=1000000000 \
    RATE_LIMIT_API_MAX=1000000000 RATE_LIMIT_AUTH_MAX=1000000000 RATE_LIMIT_UPLOAD_MAX=1000000000 \
    ROOM_MESSAGE_RATE=1000000000 ROOM_MESSAGE_BURST=1000000000 \
    DATA_DIR="$WORK/$name/data" LOG_DIR="$WORK/$name/logs" UPLOAD_DIR="$WORK/uploads" "$@" ${TANDEM_WRAP:-} "$BIN/tandem" >"$WORK/$name.log" 2>&1) &
}

start_cluster() { # nodes name: a Redis and that many Tandem nodes on it, logs $WORK/<name><i>.log;
  # sets RPORT, PORTS and SPIDS, appends every pid to PIDS; returns once all accept
  local n=$1 name=$2 i port
  RPORT=$(free_port)
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/${name}redis.log" 2>&1 &
  PIDS+=($!)
  wait_port "$RPORT" "$WORK/${name}redis.log"
  PORTS=(); SPIDS=()
  for i in $(seq "$n"); do
    port=$(free_port)
    start_tandem "$port" "$name$i" REDIS_URL="redis://127.0.0.1:$RPORT"
    SPIDS+=($!); PIDS+=($!); PORTS+=("$port")
  done
  for i in $(seq "$n"); do wait_port "${PORTS[$((i - 1))]}" "$WORK/$name$i.log"; done
}
