#!/bin/sh
# Entrypoint of the dropsearch image.
#
# With RAY_JOIN_ADDRESS set (e.g. ray-head:6379), first join that Ray cluster as a node with no CPUs and no GPUs:
# a Ray driver (the runner inside `dropsearch serve` / `dropsearch runner`) must run on a node of the cluster, and
# a 0-CPU node never receives trials. Token auth: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN come from the
# environment and are the same on every node. Then run the command (exec: it gets the signals).
set -eu
if [ -n "${RAY_JOIN_ADDRESS:-}" ]; then
    ray start --address="${RAY_JOIN_ADDRESS}" --num-cpus=0 --num-gpus=0 --disable-usage-stats
fi
exec "$@"
