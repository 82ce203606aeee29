# The Overplane server as a container image: `docker build -t overplane .`
#
# Not built on the machines this was written on (they cannot pull base images); every step
# below is one the README's install runs and the test suite exercises (scripts/install.sh,
# `overplane serve`, GET /healthz), and tests/test_container.py checks that this file keeps
# naming only those (docs/deployment.md, "Containers").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/app/.venv/bin:$PATH \
    OVERPLANE_DATABASE_URL=sqlite:////data/overplane.sqlite3

WORKDIR /app
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY scripts/install.sh scripts/
COPY src/ src/
# The README's install (the server extra, versions pinned by constraints.txt) into /app/.venv,
# then an unprivileged user that owns only /data (the SQLite file, when no PostgreSQL is set).
RUN scripts/install.sh \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin overplane \
    && mkdir /data && chown overplane /data

USER overplane
WORKDIR /data
VOLUME /data
EXPOSE 8000

# /healthz: the process is up (use /readyz for "the database answers"). Python, not curl:
# the slim image has no curl, and the server's own interpreter is there anyway.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]

# `overplane` is the entry point and `serve` its default command, so the same image runs the
# other commands too: `docker run … overplane-image migrate`, `… keys create --account acme`.
ENTRYPOINT ["overplane"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
