# syntax=docker/dockerfile:1
# One image for every KFP component: dfcil_core + kfp + the CUDA build of torch, non-root.
# Everything Python comes from requirements.txt, the pins CI tests (torch 2.14.1+cu130 and the
# nvidia-* CUDA runtime libraries it depends on), so the image runs what CI checked. The base needs no
# CUDA (the GPU driver comes from the host through the NVIDIA container toolkit), only Debian's python3:
# Debian bookworm has Python 3.11, as CI. scripts/build_image.sh builds the same file on a local
# debootstrap of bookworm, without a registry:
#   docker build -t dfcil:0.1.0 .
#   docker build --build-arg BASE_DIGEST=@sha256:<digest> -t dfcil:0.1.0 .   # a reproducible base
#   buildah build --build-arg BASE_IMAGE=localhost/debian-minbase:bookworm -t dfcil:0.1.0 .
ARG BASE_IMAGE=debian:bookworm-slim
ARG BASE_DIGEST=""

# What every stage runs on: the distribution's python3 and CA certificates, the user the image runs as.
FROM ${BASE_IMAGE}${BASE_DIGEST} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 dfcil \
    && useradd -l --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin dfcil

FROM runtime AS build
# Package mirrors for the pip steps (a local index); a CA bundle (for a proxy that re-signs TLS) as
# the build secret pip-cert. Build stage only: none of it reaches the image.
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_FIND_LINKS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The pinned dependencies first: a code change rebuilds only the layer below them.
COPY requirements.txt ./
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY dfcil_core/ dfcil_core/
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/pip check

FROM runtime
# NVIDIA_REQUIRE_CUDA: a driver too old for torch's CUDA 13.0 fails the container's start instead of
# torch quietly falling back to the CPU.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DFCIL_DATA_ROOT=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0"
COPY --from=build /opt/venv /opt/venv
COPY components/ /app/components/
COPY pipelines/ /app/pipelines/
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["dfcil"]
CMD ["--help"]
