# syntax=docker/dockerfile:1
# minion-daemon's container image; docs/container.md tells how to run it and add tasks.
#   docker build -t minion-daemon:0.1.0 .                    the daemon alone (the last stage)
#   docker build --target example -t minion-daemon:example .  with examples/tasks (compose.yaml)
# Both stages of the runtime install wheels only, built in the builder stage; a test
# (tests/e2e/test_deployment.py) runs these pip steps in a fresh virtualenv.

FROM python:3.12-slim-bookworm AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY minion_daemon/ minion_daemon/
COPY migrations/ migrations/
COPY examples/tasks/ examples/tasks/
# The daemon's wheel with those of its dependencies (the runtime installs without an index),
# and the example tasks' wheel apart, for the example stage only.
RUN pip wheel --no-cache-dir --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/examples ./examples/tasks

FROM python:3.12-slim-bookworm AS base
ENV PATH=/opt/minion-daemon/bin:$PATH \
    PYTHONUNBUFFERED=1
# A virtualenv owned by root: the daemon's user cannot change its code; an image built FROM
# this one adds task packages to it with `pip install` as root.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/minion-daemon \
 && pip install --no-cache-dir --no-index /wheels/*.whl
# A fixed UID, so that mounted files and volumes get predictable permissions.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin minion-daemon
# The DSN from $MINION_DAEMON_DSN, metrics on 0.0.0.0:9464, JSON logs.
COPY packaging/container/config.yaml /etc/minion-daemon/config.yaml
USER 10001:10001
EXPOSE 9464
# The daemon runs as PID 1: it handles TERM/INT/QUIT/HUP itself and reaps every child,
# orphans included, so no init is needed. TERM stops it gracefully: running jobs get
# shutdown.graceful_timeout (30 s), then 10 s more before KILL; give `docker stop -t`,
# compose's stop_grace_period or Kubernetes' terminationGracePeriodSeconds 45 s or more.
STOPSIGNAL SIGTERM
# /healthz answers 200 while the supervisor's loop turns (urllib: slim images have no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["minion-daemon"]
CMD ["run", "--config", "/etc/minion-daemon/config.yaml"]

# The daemon with examples/tasks (noop, sleep, echo, fail): what compose.yaml runs.
FROM base AS example
USER 0:0
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/examples/*.whl
USER 10001:10001

# The default target: the daemon alone, for production images and images built FROM it.
FROM base AS runtime
