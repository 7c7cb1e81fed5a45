#!/usr/bin/env bash
# spotgate VM agent, shutdown half. Compute Engine runs this on ACPI soft-off: a SPOT preemption (about 30 s
# of notice in total) or a stop by the control plane. Order matters:
#   1. publish "draining" first, so the control plane marks the route draining and the gateway stops sending
#      new requests within about a second;
#   2. let in-flight requests finish, until none are left or the drain budget (spotgate-drain-seconds) ends;
#   3. stop the engine container so it exits cleanly before the VM powers off.
set -uo pipefail

# The endpoints can be overridden only so tests/infra can run this script against local fakes.
readonly MD="${SPOTGATE_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
readonly PUBSUB="${SPOTGATE_PUBSUB_URL:-https://pubsub.googleapis.com/v1}"
readonly CONTAINER="spotgate-engine"

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
  # One quick retry only: every second spent here is a second less for in-flight requests.
  curl -fsS --max-time 3 --retry 1 -X POST \
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

main() {
  local project topic pool port budget preempted
  project="$(metadata instance/attributes/spotgate-project)"
  topic="$(metadata instance/attributes/spotgate-control-topic)"
  pool="$(metadata instance/attributes/spotgate-pool)"
  port="$(metadata instance/attributes/spotgate-port)"
  budget="$(metadata instance/attributes/spotgate-drain-seconds || echo 20)"
  preempted="$(metadata instance/preempted || echo unknown)"
  log INFO "shutting down (preempted=${preempted})"

  if ! publish_draining "${project}" "${topic}" "${pool}"; then
    log ERROR "could not publish draining; the compute event (preempted) or the next tick will catch up"
  fi
  if docker inspect "${CONTAINER}" >/dev/null 2>&1; then
    drain "${port}" "${budget}"
    docker stop -t 3 "${CONTAINER}" >/dev/null || true
    log INFO "engine stopped"
  fi
}

main "$@"
