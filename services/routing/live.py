"""The router in use, rebuilt whenever the catalogue in use changes (:class:`shared.live_catalogue.LiveCatalogue`)."""

from __future__ import annotations

from services.routing.classifier import Router
from services.routing.feedback import FeedbackMemory
from shared.catalogue import Catalogue
from shared.live_catalogue import LiveCatalogue


class LiveRouter:
    def __init__(self, catalogue: LiveCatalogue, memory: FeedbackMemory, router: Router | None = None) -> None:
        self.memory = memory
        self.router = router or Router(catalogue.current, feedback=memory)
        catalogue.on_change(self._rebuild)

    def __call__(self) -> Router:
        return self.router

    def _rebuild(self, catalogue: Catalogue) -> None:
        self.router = Router(catalogue, feedback=self.memory)
