#!/usr/bin/env sh
# Container entry point. One image serves both kinds of RunPod endpoint: a load-balancing
# endpoint sets PORT and gets the HTTP API; a queue endpoint gets the job-queue worker.
set -eu
if [ "$#" -eq 0 ] && [ -n "${PORT:-}" ]; then
    exec chatterbox-worker serve
fi
exec chatterbox-worker "$@"
