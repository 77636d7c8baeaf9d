#!/bin/sh
# Container entry point. One image serves both kinds of RunPod endpoint: a load-balancing
# endpoint sets PORT and gets the HTTP API (`serve`); a queue endpoint gets the job-queue
# worker. Arguments, when given, go to the worker unchanged.
#
# Before handing over it prepares the network volume and says on stderr, one `bootstrap:`
# line each, what the worker will find: the volume, voices.json, cached checkpoints, the GPU.
# It sets none of the worker's variables (docs/configuration.md): the worker reads them
# itself, so what is logged here and what runs cannot disagree.
#
# Its own variables: CHATTERBOX_BIN, the worker binary (default: chatterbox-worker on PATH);
# CHATTERBOX_VOICES_EXAMPLE, the file a volume without voices.json is seeded from (default:
# the first voices.json.example beside this script, in /app or in /opt/chatterbox; `none`
# seeds nothing).
set -eu

log() {
    printf 'bootstrap: %s\n' "$*" >&2
}

bin="${CHATTERBOX_BIN:-chatterbox-worker}"
runpod_volume=/runpod-volume
runpod_hub_cache="$runpod_volume/huggingface-cache/hub"

# The worker's own rule (src/storage/volume.rs): CHATTERBOX_VOLUME, else the folder on a
# mounted network volume; without either it keeps ./volume, created when first written.
volume="${CHATTERBOX_VOLUME:-}"
if [ -z "$volume" ] && [ -d "$runpod_volume" ]; then
    volume="$runpod_volume/chatterbox"
fi

prepare_volume() {
    # The worker creates these when it first writes; made here so an operator browsing a
    # fresh volume sees where clips and results go. A volume that refuses is reported, not
    # fatal: jobs with inline audio still work, and the worker names what it cannot write.
    if mkdir -p "$volume/audio_prompts" "$volume/output" "$volume/models"; then
        log "volume $volume: audio_prompts/, output/, models/"
    else
        log "volume $volume: cannot create audio_prompts/, output/, models/"
    fi
}

voices_example() {
    case "${CHATTERBOX_VOICES_EXAMPLE:-}" in
        none) return 1 ;;
        "") ;;
        *)
            if [ -f "$CHATTERBOX_VOICES_EXAMPLE" ]; then
                printf '%s\n' "$CHATTERBOX_VOICES_EXAMPLE"
                return 0
            fi
            log "voices: CHATTERBOX_VOICES_EXAMPLE=$CHATTERBOX_VOICES_EXAMPLE is not a file"
            return 1
            ;;
    esac
    for candidate in "$(dirname "$0")/voices.json.example" \
        /app/voices.json.example /opt/chatterbox/voices.json.example; do
        if [ -f "$candidate" ]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

seed_voices() {
    target="$volume/voices.json"
    if [ -e "$target" ]; then
        log "voices: $target (kept)"
        return 0
    fi
    if ! example="$(voices_example)"; then
        log "voices: no voices.json; OpenAI voice names speak in the built-in voice"
        return 0
    fi
    # Workers sharing a volume start together, and a running one may be writing voices.json
    # (voice_upload): the copy is made under a private name and linked into place, which
    # fails if the name exists, so nothing is overwritten and nobody reads half a file.
    if ! staged="$(mktemp "$volume/.voices.json.XXXXXX")"; then
        log "voices: cannot write in $volume; no voices.json seeded"
        return 0
    fi
    if cp "$example" "$staged" && chmod 644 "$staged"; then
        if ln "$staged" "$target" 2>/dev/null; then
            log "voices: seeded $target from $example"
        elif [ -e "$target" ]; then
            log "voices: $target (written meanwhile by another worker; kept)"
        elif (set -C && cat "$staged" >"$target") 2>/dev/null; then
            # A filesystem without hard links: noclobber still refuses to overwrite.
            log "voices: seeded $target from $example"
        else
            log "voices: cannot write $target; no voices.json seeded"
        fi
    else
        log "voices: cannot copy $example into $volume; no voices.json seeded"
    fi
    rm -f "$staged"
}

# Which Chatterbox repositories a hub cache holds (`models--ResembleAI--chatterbox-turbo`).
# Only presence is reported: the worker checks each file and picks the first complete copy.
cached_repos() {
    found=""
    for snapshots in "$1"/models--ResembleAI--chatterbox*/snapshots; do
        [ -d "$snapshots" ] || continue
        repo="${snapshots%/snapshots}"
        repo="${repo##*/models--}"
        found="$found${found:+, }ResembleAI/${repo#ResembleAI--}"
    done
    printf '%s\n' "$found"
}

log_checkpoints() {
    any=""
    if [ -n "${CHATTERBOX_CHECKPOINT_DIR:-}" ]; then
        log "checkpoints: CHATTERBOX_CHECKPOINT_DIR=$CHATTERBOX_CHECKPOINT_DIR first"
        any=1
    fi
    # The hub caches the worker searches, in its order (docs/configuration.md).
    hf_home_hub=""
    if [ -n "${HF_HOME:-}" ]; then
        hf_home_hub="$HF_HOME/hub"
    fi
    seen=" "
    for hub in "$runpod_hub_cache" "${HF_HUB_CACHE:-}" "${HUGGINGFACE_HUB_CACHE:-}" "$hf_home_hub"; do
        case "$seen" in *" $hub "*) continue ;; esac
        seen="$seen$hub "
        if [ -z "$hub" ] || [ ! -d "$hub" ]; then
            continue
        fi
        repos="$(cached_repos "$hub")"
        [ -n "$repos" ] || continue
        if [ "$hub" = "$runpod_hub_cache" ]; then
            log "checkpoints: RunPod's cached models ($hub) hold $repos"
        else
            log "checkpoints: the hub cache $hub holds $repos"
        fi
        any=1
    done
    cache="${volume:-volume}/models"
    repos=""
    for repo in "$cache"/ResembleAI/chatterbox*; do
        [ -d "$repo" ] && repos="$repos${repos:+, }ResembleAI/${repo##*/}"
    done
    if [ -n "$repos" ]; then
        log "checkpoints: the volume cache $cache holds $repos"
        any=1
    fi
    if [ -z "$any" ]; then
        log "checkpoints: none cached; the first load downloads them from ${HF_ENDPOINT:-https://huggingface.co} into $cache"
    fi
}

nvidia_smi() {
    # A wedged driver can hang nvidia-smi; the worker must start regardless.
    if command -v timeout >/dev/null 2>&1; then
        timeout 20 nvidia-smi "$@"
    else
        nvidia-smi "$@"
    fi
}

log_gpu() {
    device="${CHATTERBOX_DEVICE:-cpu}"
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        case "$device" in
            cuda*) log "no GPU found, but CHATTERBOX_DEVICE=$device: loading the model will fail" ;;
            *) log "no GPU found; running on the CPU" ;;
        esac
        return 0
    fi
    if ! gpus="$(nvidia_smi --query-gpu=name,driver_version --format=csv,noheader 2>&1)"; then
        log "nvidia-smi failed: $(printf '%s' "$gpus" | head -n 1)"
        return 0
    fi
    cuda="$(nvidia_smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n 1)" || cuda=""
    printf '%s\n' "$gpus" | while IFS= read -r gpu; do
        [ -n "$gpu" ] || continue
        log "GPU: ${gpu%%,*}, driver${gpu#*,}, CUDA ${cuda:-unknown}"
    done
    case "$device" in
        cpu) log "CHATTERBOX_DEVICE=cpu: the model runs on the CPU, not the GPU" ;;
    esac
}

if [ -n "$volume" ]; then
    prepare_volume
    seed_voices
else
    log "no network volume: voices, results and downloads stay in ./volume and go with the container"
fi
log_checkpoints
log_gpu
log "model ${CHATTERBOX_MODEL:-turbo}, device ${CHATTERBOX_DEVICE:-cpu}, dtype ${CHATTERBOX_DTYPE:-f32}, preload ${CHATTERBOX_PRELOAD:-false}, concurrency ${MAX_CONCURRENCY:-1}"

if ! command -v "$bin" >/dev/null 2>&1; then
    log "$bin not found (set CHATTERBOX_BIN)"
    exit 127
fi
if [ "$#" -eq 0 ] && [ -n "${PORT:-}" ]; then
    log "starting $bin serve (PORT=$PORT)"
    exec "$bin" serve
fi
if [ "$#" -gt 0 ]; then
    log "starting $bin $1 ($# arguments)"
elif [ -n "${RUNPOD_WEBHOOK_GET_JOB:-}" ]; then
    log "starting $bin on the job queue"
else
    log "starting $bin (no RUNPOD_WEBHOOK_GET_JOB: a local replay of ./test_input.json)"
fi
exec "$bin" "$@"
