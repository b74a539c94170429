# SwarmHub services image. One image runs any of the four services:
#   docker build -t swarmhub .
#   docker run -e SWARMHUB_SERVICE=router -e SWARMHUB_NATS_URL=nats://nats:4222 swarmhub
#   docker run -e SWARMHUB_NATS_URL=nats://nats:4222 swarmhub worker
#   docker run swarmhub swarmhub --help

# The base by digest, so every build starts from the same bytes: the multi-platform index of
# python:3.11-slim-bookworm (Python 3.11.16, Debian 12) as docker-library/repo-info recorded it
# (repos/python/remote/3.11-slim-bookworm.md). To move on, read the current index digest with
# `docker buildx imagetools inspect python:3.11-slim-bookworm` and replace both together.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:fe556eaffd0d96abd8685b83bb8a69addd0dc730fa193669a7df0d49ddcfac02

# ---------------------------------------------------------------- build: a self-contained venv
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Compilers only for dependencies without a wheel for this platform; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Every dependency pinned by the constraints file (the same pins the tests run against).
COPY pyproject.toml constraints.txt README.md ./
COPY libs ./libs
COPY services ./services
COPY load ./load
RUN pip install -c constraints.txt .

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="swarmhub" \
      org.opencontainers.image.description="SwarmHub: a task hub for swarms of AI agents over NATS"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SWARMHUB_LOG_FORMAT=json \
    SWARMHUB_METRICS_HOST=0.0.0.0 \
    SWARMHUB_SERVICE=""

RUN groupadd --system --gid 10001 swarmhub \
    && useradd --system --uid 10001 --gid swarmhub --home-dir /app --shell /usr/sbin/nologin swarmhub

COPY --from=build /opt/venv /opt/venv
COPY deploy/docker/entrypoint.sh /usr/local/bin/swarmhub-entrypoint
COPY deploy/docker/healthcheck.py /usr/local/lib/swarmhub/healthcheck.py

WORKDIR /app
RUN chmod 0755 /usr/local/bin/swarmhub-entrypoint && chown swarmhub:swarmhub /app
USER 10001:10001

# Metrics ports used by docker-compose.yml: router, coordinator, worker, cache. Each also serves
# /healthz (alive) and /readyz (connected to NATS, subscribed, not draining).
EXPOSE 9101 9102 9103 9104

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/lib/swarmhub/healthcheck.py"]

# SIGTERM starts the graceful drain (stop intake, finish in-flight, drain, close).
STOPSIGNAL SIGTERM
ENTRYPOINT ["swarmhub-entrypoint"]
CMD []
