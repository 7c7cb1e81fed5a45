#!/usr/bin/env bash
# spotgate VM agent, startup half. Compute Engine runs this as root on EVERY boot (first boot and each
# restart after a preemption), and a boot can be cut anywhere (a preemption, or Terraform stopping the VM it
# just created), so every step is idempotent and resumable:
#   0. exit at once on the creation boot: Compute Engine cannot create a stopped VM, so Terraform creates it
#      RUNNING and stops it right away. The agent reads its own instance (compute instances.get): a VM that has
#      never been stopped (no lastStopTimestamp) is on that boot, which nobody asked to serve. Every start by
#      the control plane comes after at least one stop. If the read fails the boot proceeds (fail open);
#   1. install once (marker file): gcsfuse, Docker and the NVIDIA container toolkit, if the image lacks them
#      (an interrupted dpkg is finished first: `dpkg --configure -a`, else every later apt-get fails);
#   2. mount the models bucket with gcsfuse and copy this pool's weights to the boot disk once (paths are
#      versioned and immutable, so a finished copy never goes stale and restarts load from local disk); an
#      interrupted copy (a preemption mid-copy) resumes: files already copied whole are kept;
#   3. wait until the GPU works inside Docker (the driver may still be installing on first boot);
#   4. (re)start the engine container if it is not already running with this exact configuration;
#   5. wait for the engine's health endpoint, then publish "ready" to the control topic;
#   6. watch the metadata server's instance/preempted in the background and publish "draining" the moment
#      it turns TRUE: with the pool's preemption_notice, GCE says so that long before the ACPI soft-off, so
#      the gateway stops sending new requests while the VM still has time to finish the streams it serves.
# Each long step publishes a "progress" message with its phase as it begins (installing, copying_weights,
# pulling, loading): the control plane judges a boot stuck by the time since the last one, not by its length.
# Settings come from instance metadata attributes spotgate-* (written by Terraform, infra/modules/gpu_pool).
set -euo pipefail

# The endpoints and directories can be overridden only so tests/infra can run this script against local fakes.
readonly MD="${SPOTGATE_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
readonly PUBSUB="${SPOTGATE_PUBSUB_URL:-https://pubsub.googleapis.com/v1}"
readonly COMPUTE="${SPOTGATE_COMPUTE_URL:-https://compute.googleapis.com/compute/v1}"
# /run is a tmpfs: the creation-boot flag lives for this boot only (shutdown.sh reads it).
readonly RUN_DIR="${SPOTGATE_RUN_DIR:-/run/spotgate}"
readonly STATE_DIR="${SPOTGATE_STATE_DIR:-/var/lib/spotgate}"
readonly INSTALLED_MARKER="${STATE_DIR}/installed-v1"
readonly MOUNT_DIR="${SPOTGATE_MOUNT_DIR:-/mnt/spotgate-bucket}"
readonly MODELS_DIR="${STATE_DIR}/models"
readonly ENGINE_CACHE="${STATE_DIR}/engine-cache"
readonly CONTAINER="spotgate-engine"
readonly GPU_ATTEMPTS=60   # x 10 s: the first-boot driver install takes a few minutes
readonly HEALTH_ATTEMPTS=180  # x 5 s: pulling a large image and loading weights

log() {
  local severity="$1"; shift
  printf '{"severity":"%s","message":"%s","component":"spotgate-agent"}\n' "${severity}" "$*"
}

metadata() {
  curl -fsS --retry 5 --retry-connrefused -H "Metadata-Flavor: Google" "${MD}/$1"
}

attribute() {
  metadata "instance/attributes/$1"
}

access_token() {
  metadata instance/service-accounts/default/token \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# Prints "creation" when this instance has never been stopped, "restart" when it has, nothing when unknown.
boot_kind() {
  local project="$1" name zone token
  name="$(metadata instance/name)" || return 0
  zone="$(metadata instance/zone)" || return 0
  token="$(access_token)" || return 0
  curl -fsS --max-time 10 --retry 2 -H "Authorization: Bearer ${token}" \
    "${COMPUTE}/projects/${project}/zones/${zone##*/}/instances/${name}" 2>/dev/null \
    | python3 -c 'import json, sys; print("restart" if json.load(sys.stdin).get("lastStopTimestamp") else "creation")' \
    2>/dev/null || true
}

# Writes a file whole or not at all (a boot cut mid-write must not leave half a keyring or apt source).
write_atomically() {
  local target="$1"
  cat >"${target}.partial"
  mv -f "${target}.partial" "${target}"
}

apt_get() {
  # unattended-upgrades may hold the dpkg lock on first boot: wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=300 "$@"
}

install_once() {
  if [[ -f "${INSTALLED_MARKER}" ]]; then
    return 0
  fi
  progress installing
  log INFO "first boot: installing missing packages"
  export DEBIAN_FRONTEND=noninteractive
  # A boot cut during an earlier install leaves dpkg half-configured; finish that first.
  dpkg --configure -a
  local codename
  codename="$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)"
  if ! command -v gcsfuse >/dev/null; then
    curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg | write_atomically /usr/share/keyrings/cloud.google.asc
    echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-${codename} main" \
      | write_atomically /etc/apt/sources.list.d/gcsfuse.list
  fi
  if ! command -v nvidia-ctk >/dev/null; then
    curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey \
      | gpg --batch --yes --dearmor | write_atomically /usr/share/keyrings/nvidia-container-toolkit.gpg
    curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list \
      | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit.gpg] https://#' \
      | write_atomically /etc/apt/sources.list.d/nvidia-container-toolkit.list
  fi
  apt_get update -q
  command -v gcsfuse >/dev/null || apt_get install -yq gcsfuse
  command -v docker >/dev/null || apt_get install -yq docker.io
  command -v nvidia-ctk >/dev/null || apt_get install -yq nvidia-container-toolkit
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
  mkdir -p "${STATE_DIR}"
  touch "${INSTALLED_MARKER}"
  log INFO "install complete"
}

mount_bucket() {
  local bucket="$1"
  mkdir -p "${MOUNT_DIR}"
  if mountpoint -q "${MOUNT_DIR}"; then
    return 0
  fi
  gcsfuse --implicit-dirs -o ro "${bucket}" "${MOUNT_DIR}"
}

cache_weights() {
  local model_path="$1"
  local target="${MODELS_DIR}/${model_path}"
  if [[ -f "${target}/.spotgate-complete" ]]; then
    log INFO "weights ${model_path} already on the boot disk"
    return 0
  fi
  progress copying_weights
  log INFO "copying weights ${model_path} from the models bucket to the boot disk"
  copy_missing "${MOUNT_DIR}/${model_path}" "${target}.partial"
  touch "${target}.partial/.spotgate-complete"
  rm -rf "${target}"
  mv "${target}.partial" "${target}"
}

# Make $2 a copy of $1, copying only the files not there whole yet. Each file is written under a temporary
# name and renamed when complete, so a file at its final name is whole and a restarted copy skips it (weights
# are a few multi-GB shards: a preemption mid-copy costs the shard in progress, not the whole copy). Files
# that are not in $1 (a cut temporary file) are removed.
copy_missing() {
  local source="$1" target="$2" file relative
  mkdir -p "${target}"
  while IFS= read -r -d '' file; do
    relative="${file#"${target}"/}"
    [[ -f "${source}/${relative}" ]] || rm -f "${file}"
  done < <(find "${target}" -type f -print0)
  while IFS= read -r -d '' file; do
    relative="${file#"${source}"/}"
    if [[ -f "${target}/${relative}" && "$(stat -c %s "${file}")" == "$(stat -c %s "${target}/${relative}")" ]]; then
      continue
    fi
    mkdir -p "$(dirname "${target}/${relative}")"
    cp "${file}" "${target}/${relative}.spotgate-copying"
    mv "${target}/${relative}.spotgate-copying" "${target}/${relative}"
  done < <(find "${source}" -type f -print0)
}

wait_for_gpu() {
  local image="$1" attempt
  for ((attempt = 1; attempt <= GPU_ATTEMPTS; attempt++)); do
    if docker run --rm --gpus all --entrypoint nvidia-smi "${image}" -L >/dev/null 2>&1; then
      log INFO "GPU visible inside Docker"
      return 0
    fi
    log INFO "GPU not usable in Docker yet (attempt ${attempt}/${GPU_ATTEMPTS})"
    if ((attempt == 1)); then
      progress installing  # the first boot's driver install is still running
    fi
    sleep 10
  done
  log ERROR "GPU never became usable inside Docker"
  return 1
}

run_engine() {
  local image="$1" port="$2" config_hash="$3"; shift 3
  local running_hash
  running_hash="$(docker inspect -f '{{ index .Config.Labels "spotgate.config" }}' "${CONTAINER}" 2>/dev/null || true)"
  if [[ "${running_hash}" == "${config_hash}" ]] && [[ "$(docker inspect -f '{{.State.Running}}' "${CONTAINER}")" == "true" ]]; then
    log INFO "engine already running with this configuration"
    return 0
  fi
  docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
  mkdir -p "${ENGINE_CACHE}"
  # --ipc=host gives the engine the host's /dev/shm (PyTorch workers exchange tensors through shared
  # memory; Docker's 64 MB default breaks them). The weights are mounted read-only at /models, the same path
  # the Cloud Run overflow service mounts the bucket at, so one set of engine flags serves both.
  docker run -d --name "${CONTAINER}" \
    --label "spotgate.config=${config_hash}" \
    --restart unless-stopped \
    --gpus all \
    --ipc=host \
    --ulimit memlock=-1 \
    -p "${port}:${port}" \
    -v "${MODELS_DIR}:/models:ro" \
    -v "${ENGINE_CACHE}:/root/.cache" \
    "${image}" "$@" >/dev/null
  log INFO "engine container started"
}

wait_for_health() {
  local port="$1" path="$2" attempt
  for ((attempt = 1; attempt <= HEALTH_ATTEMPTS; attempt++)); do
    if curl -fsS --max-time 3 "http://127.0.0.1:${port}${path}" >/dev/null 2>&1; then
      log INFO "engine healthy on port ${port}"
      return 0
    fi
    if [[ "$(docker inspect -f '{{.State.Status}}' "${CONTAINER}" 2>/dev/null)" == "exited" ]]; then
      log ERROR "engine container exited: $(docker logs --tail 20 "${CONTAINER}" 2>&1 | tr '\n"' ' ')"
      return 1
    fi
    sleep 5
  done
  log ERROR "engine not healthy after ${HEALTH_ATTEMPTS} checks"
  return 1
}

# An image in Artifact Registry (REGION-docker.pkg.dev/…) needs credentials: log Docker in with the VM's own
# token (the VM account has roles/artifactregistry.reader on the spotgate repository). The token goes through
# stdin, never the command line or the log.
pull_image() {
  local image="$1" host="${1%%/*}"
  if [[ "${host}" == *-docker.pkg.dev ]]; then
    access_token | docker login -u oauth2accesstoken --password-stdin "https://${host}" >/dev/null
  fi
  docker pull -q "${image}" >/dev/null
}

publish() {
  local kind="$1" project="$2" topic="$3" pool="$4" phase="${5:-}"
  local name zone at message token attempt
  name="$(metadata instance/name)"
  zone="$(metadata instance/zone)"
  zone="${zone##*/}"
  at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if [[ -n "${phase}" ]]; then
    message="$(printf '{"v":1,"kind":"progress","phase":"%s","pool":"%s","instance":"%s","zone":"%s","at":"%s"}' \
      "${phase}" "${pool}" "${name}" "${zone}" "${at}" | base64 -w0)"
  else
    message="$(printf '{"v":1,"kind":"%s","pool":"%s","instance":"%s","zone":"%s","at":"%s"}' \
      "${kind}" "${pool}" "${name}" "${zone}" "${at}" | base64 -w0)"
  fi
  token="$(access_token)"
  for attempt in 1 2 3 4 5; do
    if curl -fsS --max-time 10 -X POST \
      -H "Authorization: Bearer ${token}" -H "Content-Type: application/json" \
      -d "{\"messages\":[{\"data\":\"${message}\"}]}" \
      "${PUBSUB}/projects/${project}/topics/${topic}:publish" >/dev/null; then
      log INFO "published ${kind}${phase:+ ${phase}} for ${name}"
      return 0
    fi
    log WARNING "publish ${kind} failed (attempt ${attempt}/5)"
    sleep "${attempt}"
  done
  return 1
}

# Blocks on instance/preempted?wait_for_change (GCE answers when the value changes, or at once when
# last_etag is not the current one), then publishes "draining" once the value is TRUE.
watch_preemption() {
  local project="$1" topic="$2" pool="$3" etag="NONE" value headers failures=0
  headers="$(mktemp)"
  while ((failures < 30)); do
    if ! value="$(curl -fsS --max-time 3700 -D "${headers}" -H "Metadata-Flavor: Google" \
      "${MD}/instance/preempted?wait_for_change=true&timeout_sec=3600&last_etag=${etag}")"; then
      failures=$((failures + 1))
      sleep 2
      continue
    fi
    failures=0
    etag="$(awk 'tolower($1) == "etag:" { print $2 }' "${headers}" | tr -d '\r')"
    if [[ "${value}" == "TRUE" ]]; then
      log INFO "preemption notice: publishing draining"
      publish draining "${project}" "${topic}" "${pool}" || log ERROR "could not publish draining"
      break
    fi
  done
  rm -f "${headers}"
}

# One watcher per boot (the startup script runs again on every restart, and may be re-run by hand); it
# outlives this script: Compute Engine's startup-script unit only waits for the script itself.
start_preemption_watch() {
  local pidfile="${RUN_DIR}/preemption-watch.pid"
  mkdir -p "${RUN_DIR}" "${STATE_DIR}"
  if [[ -f "${pidfile}" ]] && kill -0 "$(cat "${pidfile}")" 2>/dev/null; then
    log INFO "preemption watcher already running"
    return 0
  fi
  watch_preemption "$@" </dev/null >>"${STATE_DIR}/preemption-watch.log" 2>&1 &
  echo "$!" >"${pidfile}"
  disown
}

# Report a boot phase as it begins. Best effort: a lost report only makes the control plane less patient.
progress() {
  publish progress "${PROJECT}" "${TOPIC}" "${POOL}" "$1" || log WARNING "could not publish progress $1"
}

main() {
  local project topic pool port health image bucket model_path config_hash
  project="$(attribute spotgate-project)"
  topic="$(attribute spotgate-control-topic)"
  pool="$(attribute spotgate-pool)"
  PROJECT="${project}" TOPIC="${topic}" POOL="${pool}"
  port="$(attribute spotgate-port)"
  health="$(attribute spotgate-health-path)"
  image="$(attribute spotgate-engine-image)"
  bucket="$(attribute spotgate-models-bucket)"
  model_path="$(attribute spotgate-model-path)"
  local -a args=()
  mapfile -t args < <(attribute spotgate-engine-args)

  if [[ "$(boot_kind "${project}")" == "creation" ]]; then
    mkdir -p "${RUN_DIR}"
    touch "${RUN_DIR}/creation-boot"
    log INFO "creation boot (Terraform creates VMs running, then stops them): not serving until the control plane starts this VM"
    return 0
  fi
  install_once
  mount_bucket "${bucket}"
  cache_weights "${model_path}"
  # A pinned tag is already on the boot disk after the first boot: restarts must not depend on a registry.
  if ! docker image inspect "${image}" >/dev/null 2>&1; then
    progress pulling
    pull_image "${image}"
  fi
  wait_for_gpu "${image}"
  config_hash="$(printf '%s\n' "${image}" "${port}" "${args[@]}" | sha256sum | cut -c1-16)"
  run_engine "${image}" "${port}" "${config_hash}" "${args[@]}"
  progress loading
  wait_for_health "${port}" "${health}"
  publish ready "${project}" "${topic}" "${pool}"
  start_preemption_watch "${project}" "${topic}" "${pool}"
}

main "$@"
