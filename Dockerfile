# One image for every service of docker-compose.yml: the rubiks package with its compiled
# extension (CPU + CUDA kernels), Ray, MLflow and the PostgreSQL driver. linux/amd64 only:
# decord has no ARM wheel. Python: Ubuntu 24.04's own python3 (3.12; it packages no Python 3.11
# package); wheels exist for cp312 of torch, ray 2.60, psycopg-binary, and decord's py3 wheel.
# Not built on the development machines (no Docker engine): tests/deploy/test_stack.py runs the
# same service commands as processes.
FROM --platform=linux/amd64 nvidia/cuda:13.0.0-devel-ubuntu24.04 AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_BREAK_SYSTEM_PACKAGES=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-dev python3-venv \
        python3-pip build-essential ffmpeg && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# a CUDA build of torch: the extension gets CUDA kernels (TORCH_CUDA_ARCH_LIST: Hopper and Ampere)
RUN pip install "torch>=2.11,<2.15" "pybind11>=2.12" ninja setuptools wheel
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY ext ext
COPY rubiks_service rubiks_service
ENV TORCH_CUDA_ARCH_LIST="8.0;9.0"
RUN pip install --no-build-isolation ".[service]"

FROM --platform=linux/amd64 nvidia/cuda:13.0.0-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 ffmpeg libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
# every service runs as this unprivileged user (uid 1000; compose's `user: rubiks`); /work/runs is
# created here so that a fresh named volume mounted there is theirs too
RUN (userdel -r ubuntu 2>/dev/null || true) && useradd --uid 1000 --create-home --shell /usr/sbin/nologin rubiks \
    && mkdir -p /work/runs && chown rubiks:rubiks /work /work/runs
WORKDIR /work
COPY configs configs
COPY tune_spaces tune_spaces
COPY jobs jobs
USER rubiks
RUN rubiks info
