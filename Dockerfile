# One image for the API and the Celery workers.
# syntax=docker/dockerfile:1

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# locked, hash-checked dependencies first: this layer is cached across code changes
COPY requirements/runtime.txt requirements/runtime.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY app ./app
COPY alembic ./alembic
# a wheel install: the migrations travel inside the package (app/migrations)
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TWOLAYER_DATABASE_URL=sqlite:////srv/data/twolayer.db
RUN groupadd --system --gid 10001 twolayer \
    && useradd --system --uid 10001 --gid twolayer --home-dir /srv --no-create-home twolayer \
    && mkdir -p /srv/data \
    && chown -R twolayer:twolayer /srv
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["twolayer", "serve", "--host", "0.0.0.0", "--port", "8000"]
