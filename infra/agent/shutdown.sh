#!/usr/bin/env bash
# spotgate VM agent, shutdown half. Compute Engine runs this on ACPI soft-off: a SPOT preemption (about 30 s
# of notice in total) or a stop by the control plane. Order matters:
#   1. publish "draining" first, so the control plane marks the route draining and the gateway stops sending
#      new requests within about a second (with an early preemption notice, startup.sh's watcher has already
#      published it; a second one is harmless: handlers are idempotent);
#   2. let in-flight requests finish, until none are left or the drain budget (spotgate-drain-seconds) ends;
#   3. stop the engine container so it exits cleanly before the VM powers off.
# The whole script fits in the soft-off window (spotgate-notice-seconds, 30 s: what GCE gives a preempted
# SPOT VM; a pool's early preemption_notice comes *before* that window, and startup.sh's watcher drains
# through it): publishing gets at most PUBLISH_SECONDS, stopping STOP_SECONDS, power-off keeps
# MARGIN_SECONDS, and the drain gets the rest (never more than spotgate-drain-seconds). A longer window
# (spotgate-notice-seconds up) simply leaves more for the drain.
# On the creation boot (startup.sh exited at once, nothing runs) it does nothing.
set -uo pipefail

# The endpoints can be overridden only so tests/infra can run this script against local fakes.
readonly MD="${SPOTGATE_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
readonly PUBSUB="${SPOTGATE_PUBSUB_URL:-https://pubsub.googleapis.com/v1}"
readonly RUN_DIR="${SPOTGATE_RUN_DIR:-/run/spotgate}"
readonly CONTAINER="spotgate-engine"
readonly PUBLISH_SECONDS=5
readonly STOP_SECONDS=3
readonly MARGIN_SECONDS=2
STARTED="$(date +%s)"
readonly STARTED

log() {
  local severity="$1"; shift
  printf '{"severity":"%s","message":"%s","component":"spotgate-agent"}\n' "${severity}" "$*"
}

metadata() {
  curl -fsS --max-time 2 -H "Metadata-Flavor: Google" "${MD}/$1"
}

publish_draining() {
  local project="$1" topic="$2" pool="$3"
  local name zone at message token
  name="$(metadata instance/name)" || return 1
  zone="$(metadata instance/zone)" || return 1
  zone="${zone##*/}"
  at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  message="$(printf '{"v":1,"kind":"draining","pool":"%s","instance":"%s","zone":"%s","at":"%s"}' \
    "${pool}" "${name}" "${zone}" "${at}" | base64 -w0)"
  token="$(metadata instance/service-accounts/default/token \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')" || return 1
  # Whatever the metadata reads took, the publish ends PUBLISH_SECONDS after the script started: every
  # second spent here is a second less for in-flight requests.
  local left=$((STARTED + PUBLISH_SECONDS - $(date +%s)))
  ((left >= 1)) || return 1
  curl -fsS --max-time "${left}" -X POST \
    -H "Authorization: Bearer ${token}" -H "Content-Type: application/json" \
    -d "{\"messages\":[{\"data\":\"${message}\"}]}" \
    "${PUBSUB}/projects/${project}/topics/${topic}:publish" >/dev/null
}

# Requests the engine is still working on, from its Prometheus metrics (vLLM: vllm:num_requests_running);
# prints nothing when the engine exposes no such metric, so the caller waits out the budget instead.
inflight() {
  local port="$1"
  curl -fsS --max-time 1 "http://127.0.0.1:${port}/metrics" 2>/dev/null \
    | awk '/^vllm:num_requests_running/ { total += $NF; seen = 1 } END { if (seen) print int(total) }'
}

drain() {
  local port="$1" budget="$2" deadline now running
  deadline=$(($(date +%s) + budget))
  while now=$(date +%s) && ((now < deadline)); do
    running="$(inflight "${port}")"
    if [[ "${running}" == "0" ]]; then
      log INFO "no requests in flight"
      return 0
    fi
    sleep 1
  done
  log WARNING "drain budget of ${budget}s used up with requests in flight: ${running:-unknown}"
}

# Seconds left for draining: what the notice leaves after publishing, stopping and power-off, capped by the
# configured drain budget.
drain_budget() {
  local configured="$1" notice="$2" left
  left=$((STARTED + notice - MARGIN_SECONDS - STOP_SECONDS - $(date +%s)))
  ((left < 0)) && left=0
  ((configured < left)) && left="${configured}"
  echo "${left}"
}

main() {
  local project topic pool port budget notice preempted
  if [[ -f "${RUN_DIR}/creation-boot" ]]; then
    log INFO "creation boot: nothing was started, nothing to drain"
    return 0
  fi
  project="$(metadata instance/attributes/spotgate-project)"
  topic="$(metadata instance/attributes/spotgate-control-topic)"
  pool="$(metadata instance/attributes/spotgate-pool)"
  port="$(metadata instance/attributes/spotgate-port)"
  budget="$(metadata instance/attributes/spotgate-drain-seconds || echo 20)"
  notice="$(metadata instance/attributes/spotgate-notice-seconds || echo 30)"
  preempted="$(metadata instance/preempted || echo unknown)"
  log INFO "shutting down (preempted=${preempted})"

  if ! publish_draining "${project}" "${topic}" "${pool}"; then
    log ERROR "could not publish draining; the compute event (preempted) or the next tick will catch up"
  fi
  if docker inspect "${CONTAINER}" >/dev/null 2>&1; then
    budget="$(drain_budget "${budget}" "${notice}")"
    log INFO "draining for at most ${budget}s of the ${notice}s notice"
    drain "${port}" "${budget}"
    docker stop -t "${STOP_SECONDS}" "${CONTAINER}" >/dev/null || true
    log INFO "engine stopped"
  fi
}

main "$@"
