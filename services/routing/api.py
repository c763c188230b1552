"""Routing's HTTP API: the catalogue in use and a dry run of the router. Nothing here publishes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query

from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory


def api_router(router: Callable[[], Router], memory: FeedbackMemory, officers: Callable[..., Any]) -> APIRouter:
    api = APIRouter()

    @api.get("/api/v1/catalogue", tags=["catalogue"], summary="The catalogue in use and its version")
    async def catalogue_in_use() -> dict:
        catalogue = router().catalogue
        return {
            "version": catalogue.version,
            "organisations": list(catalogue.organisation_ids),
            "areas": [a.id for a in catalogue.areas],
            "learned_reroutes": len(memory),
        }

    @api.get(
        "/api/v1/route",
        tags=["catalogue"],
        summary="Try the router on a text (nothing is published; officers, the innovation office, admins)",
        dependencies=[Depends(officers)],
    )
    async def try_route(title: str = Query(max_length=200), description: str = Query("", max_length=10_000)) -> dict:
        decision = router().route(title, description)
        return {
            "organisations": [t.model_dump() for t in decision.organisations],
            "areas": [a.model_dump() for a in decision.areas],
            "reason": decision.reason,
            "triage": decision.triage,
            "catalogue_version": decision.catalogue_version,
        }

    return api
