# syntax=docker/dockerfile:1
# One CUDA image for every component: PyTorch runtime + dfcil_core + kfp, non-root.
# Pin the base by tag; pass its digest for a reproducible build:
#   docker build --build-arg BASE_DIGEST=@sha256:<digest> -t ghcr.io/dfcil/dfcil:0.1.0 .
ARG BASE_IMAGE=pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime
ARG BASE_DIGEST=""

FROM ${BASE_IMAGE}${BASE_DIGEST} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.txt pyproject.toml README.md ./
COPY dfcil_core/ dfcil_core/
COPY components/ components/
COPY pipelines/ pipelines/
# torch/torchvision come from the base image; everything else at the pinned versions.
RUN python -m venv --system-site-packages /opt/venv \
    && grep -vE '^(torch|torchvision|triton|nvidia-|cuda-)' requirements.txt > /tmp/requirements-image.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-image.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM ${BASE_IMAGE}${BASE_DIGEST}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DFCIL_DATA_ROOT=/data \
    MPLCONFIGDIR=/tmp/matplotlib
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/components /app/components
COPY --from=build /src/pipelines /app/pipelines
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["dfcil"]
CMD ["--help"]
