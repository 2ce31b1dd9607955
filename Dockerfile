# syntax=docker/dockerfile:1
# dropsearch: ONE image for the API + runner and for every Ray node (head and workers). Ray refuses nodes whose
# Ray or Python versions differ, so every container of one cluster must run the same image.
#
#   CPU (default):   docker build -t dropsearch:latest .
#   CUDA:            docker build -t dropsearch:cuda \
#                      --build-arg BASE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04 \
#                      --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
#
# The CUDA wheels of torch bring their own CUDA libraries; the host only needs an NVIDIA driver recent enough for
# that CUDA version and the NVIDIA Container Toolkit. Pick the TORCH_INDEX that carries TORCH_VERSION for your
# CUDA (cu124, cu126, cu128, ...): `pip download torch==$TORCH_VERSION --index-url $TORCH_INDEX --no-deps` tells.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RAY_USAGE_STATS_ENABLED=0 \
    DROPSEARCH_DATA_DIR=/data

# wget: KubeRay's default probes of Ray pods call it. The CUDA bases (Ubuntu) have no Python: install the
# distribution's python3 with venv there; the python:* bases have it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget ca-certificates \
    && if ! python3 -m venv --help >/dev/null 2>&1; then \
        apt-get install -y --no-install-recommends python3 python3-venv python3-pip; \
    fi \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV" \
    && pip install --upgrade pip setuptools wheel

# torch first, from PyTorch's index (CPU or CUDA build): its own layer, cached across code changes.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"

WORKDIR /opt/dropsearch
COPY pyproject.toml README.md ./
COPY dropsearch ./dropsearch
COPY benchmarks ./benchmarks
# torch is already satisfied, so pip keeps the build installed above.
RUN pip install ".[service,postgres]" && python -c "import dropsearch, ray, torch; print(dropsearch.__version__, ray.__version__, torch.__version__)"

COPY deploy/docker/entrypoint.sh /usr/local/bin/dropsearch-entrypoint
RUN chmod 0755 /usr/local/bin/dropsearch-entrypoint \
    && useradd --create-home --uid 1000 dropsearch \
    && mkdir -p /data \
    && chown dropsearch:dropsearch /data

USER dropsearch
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000 6379 8265 10001
ENTRYPOINT ["dropsearch-entrypoint"]
CMD ["dropsearch", "--help"]
