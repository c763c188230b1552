# One image for the four services; the command picks the service (deploy/compose.yaml runs each with
# `python -m services.<name>`). Build from the repository root: docker build -t kiruna-innovation .
#
# Installed exactly as `make install` installs the virtual environment: every package from requirements.lock, each
# file checked against its hash, then the project itself as a wheel with --no-deps (nothing resolved at build time).
# The services then run from site-packages, not from a copy of the sources: the wheel carries the templates, the
# static files and the catalogue (tests/ops/test_packaging.py checks that it does).
# The lock is the one `make test` runs with, so it also holds the test extra's tools (pytest, playwright's Python
# package without browsers, ruff...): a few tens of MB more, in exchange for one set of versions everywhere.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first: a layer that changes only with requirements.lock.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# The project: built with the locked setuptools (no build isolation, so nothing is downloaded unhashed), installed
# without dependencies, checked against the lock, and the sources removed.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY catalogue ./catalogue
RUN pip install --no-deps --no-build-isolation --no-index . \
    && pip check \
    && rm -rf shared services catalogue build *.egg-info \
    && cd / && python -c "import shared.catalogue as c; c.load_catalogue(); print('catalogue at', c.DEFAULT_CATALOGUE_PATH)"

RUN useradd --system --uid 10001 --home-dir /app kiruna
USER kiruna

# Listen on every interface inside the container; the ports are the services' defaults.
ENV INTAKE_HOST=0.0.0.0 ROUTING_HOST=0.0.0.0 NOTIFICATIONS_HOST=0.0.0.0 ANALYTICS_HOST=0.0.0.0 \
    INTAKE_SMTP_HOST=0.0.0.0
EXPOSE 8000 8001 8002 8003 2525

# SIGTERM: stop consuming, finish the messages in flight, commit, flush, exit within SHUTDOWN_TIMEOUT_S.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.routing"]
