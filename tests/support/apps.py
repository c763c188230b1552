"""Run a service's factory app in-process, with its real lifespan (broker, Redis), and talk to it over ASGI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from shared.service import Runtime
from tests.support.kafka import eventually


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, wait_for_kafka: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        if wait_for_kafka:
            await eventually(runtime.kafka_connected.is_set, timeout=30)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
