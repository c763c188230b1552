from fastapi import FastAPI

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runner import serve, worker_app


def app() -> FastAPI:
    """One worker's app when INTAKE_WORKERS is above 1 (uvicorn imports this module in each worker process)."""
    return worker_app("intake", IntakeSettings, create_app)


if __name__ == "__main__":
    serve("intake", IntakeSettings, create_app, factory="services.intake.__main__:app")
