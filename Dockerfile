# One image for the four services; the command picks the service (deploy/compose.yaml runs each with
# `python -m services.<name>`). Build from the repository root: docker build -t kiruna-innovation .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first (a layer that changes only with pyproject.toml), then the code.
COPY pyproject.toml README.md ./
RUN mkdir shared services && touch shared/__init__.py services/__init__.py \
    && pip install . \
    && pip uninstall -y kiruna-innovation \
    && rm -rf shared services build *.egg-info

COPY shared ./shared
COPY services ./services
COPY catalogue ./catalogue

RUN useradd --system --uid 10001 --home-dir /app kiruna
USER kiruna

# Listen on every interface inside the container; the ports are the services' defaults.
ENV INTAKE_HOST=0.0.0.0 ROUTING_HOST=0.0.0.0 NOTIFICATIONS_HOST=0.0.0.0 ANALYTICS_HOST=0.0.0.0 \
    INTAKE_SMTP_HOST=0.0.0.0
EXPOSE 8000 8001 8002 8003 2525

# SIGTERM: stop consuming, finish the messages in flight, commit, flush, exit within SHUTDOWN_TIMEOUT_S.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.routing"]
