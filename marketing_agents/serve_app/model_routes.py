"""The scoring model registry over HTTP: list the versions, promote one, roll back.

``add_model_routes(app, models)`` installs ``GET /api/v1/models``, ``POST /api/v1/models/{version}/promote``
and ``POST /api/v1/models/rollback``. ``models`` is the ``TriageAgent`` deployment's handle (the agent
that uses the active model: a promotion made by one of its replicas is used by every replica from the
next lead on), or a ``ModelCatalog`` in-process. The catalog is plain code over ``ModelRegistry``.

An unknown version is 404 ``model_not_found``; a rollback with no earlier active version is 409
``registry_conflict``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field
from ray.serve.handle import DeploymentHandle

from marketing_agents.domain import utc_now
from marketing_agents.scoring_models.model import METRICS_FILE
from marketing_agents.scoring_models.registry import ModelRegistry
from marketing_agents.serve_app.http_errors import ROUTE_ERRORS

Version = Annotated[str, Path(max_length=64, description="A registered version, e.g. v0002-20261203T081512Z.",
                              examples=["v0001-20261125T193000Z-synthetic"])]


class ModelMetrics(BaseModel):
    """The hold-out evaluation written at training time (``metrics.json``)."""

    model_config = ConfigDict(extra="ignore")

    roc_auc: float | None = None
    pr_auc: float | None = None
    brier: float | None = None
    base_rate: float | None = None
    n_rows: int | None = None
    n_positives: int | None = None
    capture_at_pct: dict[str, float] = Field(default_factory=dict, description="Share of converters in the top k %.")
    lift_at_pct: dict[str, float] = Field(default_factory=dict, description="Conversion rate in the top k % / base.")
    evaluation: str | None = None


class ModelVersionInfo(BaseModel):
    version: str
    number: int
    registered_at: str
    synthetic: bool = Field(description="Trained on synthetic data: a placeholder, not your leads.")
    model_kind: str | None
    active: bool
    metrics: ModelMetrics | None = Field(description="None when the version has no metrics.json.")


class ModelList(BaseModel):
    active: str | None = Field(description="The version triage uses now; None: rules only.")
    history: list[str] = Field(description="Earlier active versions, most recent last: where a rollback goes.")
    versions: list[ModelVersionInfo] = Field(description="Every registered version, oldest first.")


class ModelChange(BaseModel):
    action: Literal["promote", "rollback"]
    active: str = Field(description="The version active now.")
    previous: str | None = Field(description="The version active before.")
    changed: bool = Field(description="False when the version was active already.")
    at: datetime


class ModelCatalog:
    """The registry as the API shows it; blocking file work runs in a thread."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    async def list_models(self) -> ModelList:
        return await asyncio.to_thread(self._list)

    async def promote_model(self, version: str) -> ModelChange:
        return await asyncio.to_thread(self._promote, version)

    async def rollback_model(self) -> ModelChange:
        return await asyncio.to_thread(self._rollback)

    def _list(self) -> ModelList:
        versions = []
        for v in self.registry.list():
            try:
                metrics = ModelMetrics.model_validate(json.loads((v.path / METRICS_FILE).read_text(encoding="utf-8")))
            except (OSError, ValueError):
                metrics = None
            versions.append(ModelVersionInfo(version=v.name, number=v.number, registered_at=v.registered_at,
                                             synthetic=v.synthetic, model_kind=v.model_kind, active=v.active,
                                             metrics=metrics))
        return ModelList(active=self.registry.active(), history=self.registry.history(), versions=versions)

    def _promote(self, version: str) -> ModelChange:
        with self.registry.locked():
            previous = self.registry.active()
            self.registry.promote(version)
        return ModelChange(action="promote", active=version, previous=previous, changed=previous != version,
                           at=utc_now())

    def _rollback(self) -> ModelChange:
        with self.registry.locked():
            previous = self.registry.active()
            active = self.registry.rollback()
        return ModelChange(action="rollback", active=active, previous=previous, changed=True, at=utc_now())


def add_model_routes(app: FastAPI, models: DeploymentHandle | ModelCatalog | None) -> None:
    """Installs the model routes; none when ``models`` is None."""
    if models is None:
        return
    remote = isinstance(models, DeploymentHandle)

    async def call(name: str, *args: Any) -> Any:
        method = getattr(models, name)
        return await (method.remote(*args) if remote else method(*args))

    tags: list[str | Enum] = ["models"]  # FastAPI's type for tags

    @app.get("/api/v1/models", response_model=ModelList, responses=ROUTE_ERRORS, tags=tags,
             summary="Registered scoring model versions with their metrics, and which one is active")
    async def list_models():
        return await call("list_models")

    # Declared before /{version}/promote, although "rollback" could never match a version name.
    @app.post("/api/v1/models/rollback", response_model=ModelChange, responses=ROUTE_ERRORS, tags=tags,
              summary="Re-activate the previously active version")
    async def rollback_model():
        return await call("rollback_model")

    @app.post("/api/v1/models/{version}/promote", response_model=ModelChange, responses=ROUTE_ERRORS, tags=tags,
              summary="Make a registered version the active one (triage uses it from the next lead on)")
    async def promote_model(version: Version):
        return await call("promote_model", version)

