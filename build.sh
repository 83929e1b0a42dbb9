#!/usr/bin/env bash
# Unticked: set-up, build, serve, test, measure. Idempotent on a fresh machine.
#
#   ./build.sh              build the widget to www/pkg/ and the `unticked` binary
#   ./build.sh serve        build, then serve the demo shop on http://127.0.0.1:${PORT:-8080}/
#   ./build.sh test         fmt, clippy, native tests, browser and end-to-end tests (Chromium)
#   ./build.sh size         raw/gzip/brotli bytes per page kind; fails above 3 KB (no form) or 35 KB (a form)
#   ./build.sh render-time  median navigation → boxes-in-DOM over repeated loads (Chromium)
#   ./build.sh submit-time  median submit event → signed record posted / acknowledged (Chromium)
#   ./build.sh perf         Unticked vs vanilla-cookieconsent vs no widget on the checkout: load,
#                           UI in DOM, submit, layout shift, bytes (Chromium, LOADS=30 interleaved)
#   ./build.sh bench        collector records/s, p50/p99, peak RSS beside the raw verification rate
#                           (SQLite; PostgreSQL with 1, 2, 4 instances), then bench-lookups
#   ./build.sh bench-lookups  receipt, proof and subject look-ups at 10^4, 10^5, 10^6 records
#   ./build.sh bench-audience  the audience and suppression lists timed at 10^5 subjects (200,000 records)
#   ./build.sh bench-import `unticked import` of ROWS (10^5) rows with --links: rows/s, peak RSS, verify
#   ./build.sh screenshots  refresh docs/*.png from the demo
#   ./build.sh postgres-probe  the PostgreSQL probe test alone, on a throwaway cluster
set -euo pipefail
cd "$(dirname "$0")"

WASM_TARGET=wasm32-unknown-unknown
CHROMIUM=/usr/bin/chromium
# Cargo's output directory: ./target unless CARGO_TARGET_DIR says otherwise (a worktree may
# keep its own).
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

setup_build() {
  if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
    step "adding the $WASM_TARGET target"
    rustup target add "$WASM_TARGET"
  fi
  for component in rustfmt clippy; do
    if ! rustup component list --installed | grep -q "^$component"; then
      rustup component add "$component"
    fi
  done
  # wasm-opt from npm's binaryen (Debian's binaryen 108 is too old and broke builds here).
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    step "installing node tools (binaryen, esbuild, playwright-core)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

setup_browser() {
  if [ ! -x "$CHROMIUM" ]; then
    step "installing Chromium from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  # The double opt-in test's SMTP server makes its certificate with openssl.
  if ! command -v openssl >/dev/null; then
    step "installing openssl from Debian"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  fi
}

# The wasm-bindgen CLI must be the version of the wasm-bindgen crate (Cargo.toml pins it).
WASM_BINDGEN_VERSION=0.2.130

setup_wasm_bindgen() {
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
    step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 3 minutes)"
    # Not --locked: one pinned dependency of the CLI's lockfile is not on this registry.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

build_widget() {
  setup_build
  setup_wasm_bindgen
  step "building the widget (wasm, size-optimised)"
  cargo build --profile wasm --target "$WASM_TARGET" -p unticked
  rm -rf www/pkg "$TARGET_DIR/glue"
  mkdir -p www/pkg
  # The typed boundary: wasm-bindgen's glue (target/glue/unticked.js, bundled below) and the
  # module it loads, which wasm-opt shrinks. --converge repeats the passes while they still
  # shrink the module (about 250 bytes gzip).
  wasm-bindgen --target web --out-dir "$TARGET_DIR/glue" --remove-name-section --remove-producers-section \
    "$TARGET_DIR/$WASM_TARGET/wasm/unticked.wasm"
  node_modules/.bin/wasm-opt -Oz --converge --strip-debug --strip-producers \
    "$TARGET_DIR/glue/unticked_bg.wasm" -o www/pkg/unticked_bg.wasm
  # Three modules: the entry every page loads (src/entry.js with the courier: the outbox is
  # delivered on every page, at most 3 KB), what it loads once a page has a checkout or
  # newsletter form (src/widget.js, guards.js and the wasm's glue, as pkg/forms.js), and what
  # it loads for the shop's account form (src/account.js, no wasm, as pkg/account.js). The
  # account module names the widget's version in its records, as the wasm does: Cargo's.
  node_modules/.bin/esbuild src/entry.js --bundle --minify --format=esm --target=es2020 \
    --external:./forms.js --external:./account.js --log-level=warning --outfile=www/pkg/unticked.js
  node_modules/.bin/esbuild src/widget.js --bundle --minify --format=esm --target=es2020 \
    "--alias:unticked-wasm=$(realpath -m "$TARGET_DIR/glue/unticked.js")" --log-level=warning --outfile=www/pkg/forms.js
  local version
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
  node_modules/.bin/esbuild src/account.js --bundle --minify --format=esm --target=es2020 \
    "--define:UNTICKED_VERSION=\"$version\"" --log-level=warning --outfile=www/pkg/account.js
  # The minified stylesheet is what shoppers download; www/unticked.css stays the readable
  # source and www/pkg/unticked.css is the shipped copy.
  node_modules/.bin/esbuild www/unticked.css --minify --log-level=warning --outfile=www/pkg/unticked.css
  # The TypeScript definitions of the widget's JS API (its events and their detail).
  cp src/unticked.d.ts www/pkg/unticked.d.ts
}

# The demo's config compiled into what the widget loads (www/pkg/c/<sha256>/), as a site
# owner does on a static host; `unticked serve` does it at start too.
build_config() {
  step "compiling www/consent.json"
  "$1" build www/consent.json --out www/pkg
}

# Debug for the tests (it shares their build); release for serving and measuring.
build_collector() {
  step "building the unticked binary"
  cargo build -p unticked-collector
}

build_collector_release() {
  step "building the unticked binary (release)"
  cargo build --release -p unticked-collector
}

build() {
  build_widget
  build_collector
  build_config "$TARGET_DIR/debug/unticked"
}

serve() {
  build_widget
  build_collector_release
  step "serving the demo shop"
  # The demo shop's backend mints account tokens with this secret (/shop/account); a real
  # shop keeps its own in its settings. One per run unless given.
  UNTICKED_ACCOUNT_SECRET=${UNTICKED_ACCOUNT_SECRET:-$(head -c 32 /dev/urandom | base64 | tr -d '\n')}
  export UNTICKED_ACCOUNT_SECRET
  # The demo's staff page (/staff.html, phone consent) asks for this token: one per run,
  # printed here for whoever runs the demo, never by the collector.
  if [ -z "${UNTICKED_STAFF_TOKEN:-}" ]; then
    UNTICKED_STAFF_TOKEN=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')
    export UNTICKED_STAFF_TOKEN
    echo "build.sh: the staff page's token for this run (/staff.html): $UNTICKED_STAFF_TOKEN" >&2
  fi
  exec "$TARGET_DIR/release/unticked" serve --www www --config www/consent.json --addr "127.0.0.1:${PORT:-8080}"
}

size() {
  build_widget
  build_collector
  build_config "$TARGET_DIR/debug/unticked"
  step "widget size"
  node tools/size.mjs www/pkg www/consent.json
}

# Starts the release collector on a free port in the background; sets SERVER_PID and BASE_URL.
start_server() {
  local log
  log=$(mktemp)
  "$TARGET_DIR/release/unticked" serve --www www --config www/consent.json --db "$(mktemp -d)/log.db" \
    --addr 127.0.0.1:0 >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    BASE_URL=$(sed -n 's#^unticked: serving .* on \(http://[^ ]*\)/$#\1#p' "$log")
    [ -n "$BASE_URL" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  echo "build.sh: the collector did not start" >&2
  exit 1
}

render_time() {
  setup_browser
  build_widget
  build_collector_release
  start_server
  trap 'kill $SERVER_PID 2>/dev/null' EXIT
  node tools/render-time.mjs "$BASE_URL/checkout.html" "${LOADS:-15}"
}

# Ingest on SQLite, then on one throwaway PostgreSQL with 1, 2 and 4 collectors (each on a
# fresh database, the same key), each run beside the raw verification rate; then look-ups
# at 10^4, 10^5 and 10^6 records (LOOKUPS_AT) on SQLite and at 10^4 and 10^5 on PostgreSQL.
bench() {
  build_collector_release
  local unticked="$TARGET_DIR/release/unticked" records=${RECORDS:-20000} connections=${CONNECTIONS:-32}
  step "collector benchmark: SQLite"
  "$unticked" bench --config www/consent.json --www www -n "$records" -c "$connections"
  start_postgres
  trap stop_postgres EXIT
  local key base n
  key=$(mktemp -u)
  "$unticked" keygen --out "$key" >/dev/null
  base=${UNTICKED_TEST_POSTGRES%/*}
  for n in 1 2 4; do
    step "collector benchmark: PostgreSQL, $n instance(s)"
    "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -c "CREATE DATABASE bench_$n"
    "$unticked" bench --config www/consent.json --www www -n "$records" -c "$connections" \
      --db "$base/bench_$n" --key "$key" --instances "$n"
  done
  rm -f "$key"
  bench_lookups
}

# Look-ups (receipt with inclusion proof, consistency proof, subject) as the log grows: at
# 10^4, 10^5 and 10^6 records (LOOKUPS_AT) on SQLite and at 10^4 and 10^5 (PG_LOOKUPS_AT) on
# a throwaway PostgreSQL.
bench_lookups() {
  build_collector_release
  local unticked="$TARGET_DIR/release/unticked" connections=${CONNECTIONS:-32} key base
  step "look-ups as the log grows: SQLite"
  "$unticked" bench --config www/consent.json --www www -c "$connections" --lookups-at "${LOOKUPS_AT:-10000,100000,1000000}"
  start_postgres
  trap stop_postgres EXIT
  key=$(mktemp -u)
  "$unticked" keygen --out "$key" >/dev/null
  base=${UNTICKED_TEST_POSTGRES%/*}
  step "look-ups as the log grows: PostgreSQL, 1 instance"
  "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -c "CREATE DATABASE bench_lookups"
  "$unticked" bench --config www/consent.json --www www -c "$connections" --db "$base/bench_lookups" --key "$key" \
    --lookups-at "${PG_LOOKUPS_AT:-10000,100000}"
  rm -f "$key"
}

bench_audience() {
  build_collector_release
  step "audience and suppression at $(( ${RECORDS:-200000} / 2 )) subjects"
  "$TARGET_DIR/release/unticked" bench --config www/consent.json --www www -n "${RECORDS:-200000}" -c "${CONNECTIONS:-32}" --audience
}

# ROWS contacts (every other one an address, the rest numbers, a quarter with both), imported
# into a fresh log with their links, then the log verified; prints the import's own rows/s.
bench_import() {
  build_collector_release
  local dir rows=${ROWS:-100000}
  dir=$(mktemp -d)
  BENCH_DIR=$dir
  trap 'rm -rf "$BENCH_DIR"' EXIT
  awk -v n="$rows" 'BEGIN {
    print "email,phone,source,collected_at"
    split("order newsletter popup contest unknown", sources, " ")
    for (i = 1; i <= n; i++) {
      email = (i % 2 || i % 4 == 0) ? sprintf("contact%d@example.lv", i) : ""
      phone = (i % 2 == 0) ? sprintf("+3712%07d", i) : ""
      printf "%s,%s,%s,%s\n", email, phone, sources[i % 5 + 1], (i % 3 ? "2023-04-01" : "")
    }
  }' > "$dir/list.csv"
  step "import of $rows rows (release)"
  /usr/bin/time -f 'wall %e s, peak RSS %M KB' "$TARGET_DIR/release/unticked" import \
    --db "$dir/log.db" --config www/consent.json --source unknown \
    --public-origin https://consent.shop.example --links "$dir/links.csv" "$dir/list.csv"
  echo "links file: $(($(wc -l < "$dir/links.csv") - 1)) links"
  step "verify the log after the import"
  /usr/bin/time -f 'wall %e s' "$TARGET_DIR/release/unticked" verify --db "$dir/log.db"
}

submit_time() {
  setup_browser
  build_widget
  build_collector_release
  start_server
  trap 'kill $SERVER_PID 2>/dev/null' EXIT
  node tools/submit-time.mjs "$BASE_URL/checkout.html" "${SUBMITS:-25}"
}

# One Chromium run, loads interleaved: the checkout with Unticked, with vanilla-cookieconsent
# (node_modules) and with no widget. The tool starts the release collector itself, on a copy
# of www/ with its fixture pages beside the demo's.
perf() {
  setup_browser
  build_widget
  build_collector_release
  step "perf: Unticked vs vanilla-cookieconsent vs no widget"
  node tools/perf.mjs "$TARGET_DIR/release/unticked" "${LOADS:-30}"
}

screenshots() {
  setup_browser
  build
  node tools/screenshots.mjs docs
}

# A throwaway PostgreSQL cluster for the tests (issue 16): Debian's `postgresql` package,
# installed when no initdb is found; initdb in a fresh temporary directory, owned by an
# unprivileged user when run as root (initdb refuses root), listening on 127.0.0.1 only, on a
# free port, its socket in that directory, trust authentication (local test use only; nothing
# else can reach it). Exports UNTICKED_TEST_POSTGRES; stop_postgres stops it and removes the
# directory. If the package's install starts its own system cluster (port 5432), it is left
# alone: the tests never use it. Idempotent: a second call in one run reuses the cluster.
PG_DIR=""
PG_BIN=""
PG_RUN=()
PG_PORT=""
PG_USER=""

postgres_bin() {
  local initdb
  initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && dirname "$initdb"
}

# A TCP port of 127.0.0.1 that nothing answers on (bash's /dev/tcp: no extra tools).
free_port() {
  local port
  while :; do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

start_postgres() {
  [ -n "$PG_DIR" ] && return 0
  PG_BIN=$(postgres_bin || true)
  if [ -z "$PG_BIN" ]; then
    step "installing PostgreSQL (Debian's postgresql package)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(postgres_bin)
  fi
  local user port tries
  user=$(id -un)
  PG_DIR=$(mktemp -d)
  PG_RUN=()
  if [ "$(id -u)" = 0 ]; then
    # The package's system user; made here if the binaries came without it.
    user=postgres
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" --shell /usr/sbin/nologin postgres
    chown postgres "$PG_DIR"
    PG_RUN=(runuser -u postgres --)
  fi
  step "throwaway PostgreSQL cluster ($("$PG_BIN/postgres" --version)) in $PG_DIR"
  "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U "$user" --auth=trust -E UTF8 --no-sync >/dev/null
  # A port taken between the probe and the start: try another.
  for tries in 1 2 3 4 5; do
    port=$(free_port)
    if "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -s \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR" start; then
      PG_PORT=$port
      PG_USER=$user
      export UNTICKED_TEST_POSTGRES="postgres://$user@127.0.0.1:$port/postgres"
      # How the restart test (tests/postgres_restart.rs) stops and starts this cluster.
      export UNTICKED_TEST_POSTGRES_STOP="${PG_RUN[*]} $PG_BIN/pg_ctl -D $PG_DIR/data -m fast -w -s stop"
      export UNTICKED_TEST_POSTGRES_START="${PG_RUN[*]} $PG_BIN/pg_ctl -D $PG_DIR/data -l $PG_DIR/server.log -w -s -o '-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR' start"
      echo "PostgreSQL on $UNTICKED_TEST_POSTGRES" >&2
      return 0
    fi
  done
  cat "$PG_DIR/server.log" >&2
  echo "build.sh: the throwaway PostgreSQL cluster did not start" >&2
  return 1
}

stop_postgres() {
  [ -n "$PG_DIR" ] || return 0
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -s stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=""
  unset UNTICKED_TEST_POSTGRES UNTICKED_TEST_POSTGRES_STOP UNTICKED_TEST_POSTGRES_START
}

test_all() {
  setup_build
  setup_browser
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "clippy (native and wasm)"
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy -p unticked --target "$WASM_TARGET" -- -D warnings
  cargo clippy -p unticked-core --no-default-features --all-targets -- -D warnings
  start_postgres
  trap stop_postgres EXIT
  step "native tests on SQLite (and the PostgreSQL fault tests on the throwaway cluster)"
  cargo test --workspace
  # The collector's shared suite again, every log on PostgreSQL (tests/common: a database
  # per log). keygen_cli and lint_cli are not in it: they test SQLite's key file beside the
  # log and the linter, which has no log; the postgres_* tests ran above.
  step "native tests of the collector on PostgreSQL"
  UNTICKED_TEST_BACKEND=postgres cargo test -p unticked-collector \
    --test assisted --test bundle_cli --test durability --test history_cli --test http_edge --test import_cli \
    --test rights --test serve_cli --test webhooks --test witness
  size
  step "the wasm's exports from Node (no browser)"
  node --test tests/wasm/
  step "end-to-end tests (demo shop + collector + Chromium)"
  node --test tests/e2e/
}

case "${1:-build}" in
  build) build ;;
  serve) serve ;;
  test) test_all ;;
  size) size ;;
  render-time) render_time ;;
  submit-time) submit_time ;;
  perf) perf ;;
  bench) bench ;;
  bench-lookups) bench_lookups ;;
  bench-audience) bench_audience ;;
  bench-import) bench_import ;;
  screenshots) screenshots ;;
  setup) setup_build; setup_browser ;;
  postgres-probe) start_postgres; trap stop_postgres EXIT; cargo test -p unticked-collector --test postgres_probe -- --nocapture ;;
  *)
    echo "usage: ./build.sh [build|serve|test|size|render-time|submit-time|perf|bench|bench-lookups|bench-audience|bench-import|screenshots|setup|postgres-probe]" >&2
    exit 2
    ;;
esac
