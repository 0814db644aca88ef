"""The model registry on disk, and the synthetic default model of a new installation."""

from __future__ import annotations

import json
import re

import pytest

from marketing_agents.scoring_models import registry as registry_module
from marketing_agents.scoring_models import training
from marketing_agents.scoring_models.errors import ModelNotFoundError, RegistryError
from marketing_agents.scoring_models.features import LINEAR
from marketing_agents.scoring_models.registry import ModelRegistry
from marketing_agents.scoring_models.synthetic import (
    LABEL,
    ensure_default_model,
    generate_leads,
    seniority_from_title,
)

VERSION = re.compile(r"^v\d{4}-\d{8}T\d{6}Z$")


@pytest.fixture(scope="module")
def trained_dirs(tmp_path_factory):
    """Two quickly trained (linear-only) model directories from different data."""
    root = tmp_path_factory.mktemp("trained")
    dirs = []
    for seed in (1, 2):
        training.train_frame(generate_leads(1000, seed), LABEL, root / f"m{seed}", id_column="lead_id", cv=2,
                             candidates=(LINEAR,))
        dirs.append(root / f"m{seed}")
    return dirs


@pytest.fixture
def registry(tmp_path, trained_dirs):
    registry = ModelRegistry(tmp_path / "models")
    return registry


def test_registering_makes_numbered_versions_without_activating_them(registry, trained_dirs):
    first, second = (registry.register(d) for d in trained_dirs)
    assert VERSION.match(first) and VERSION.match(second)
    assert first.startswith("v0001-") and second.startswith("v0002-")
    assert registry.versions() == [first, second]
    assert [v.name for v in registry.list()] == [first, second]
    assert registry.active() is None and not any(v.active for v in registry.list())
    meta = json.loads((registry.path(second) / "model.json").read_text())
    assert meta["version"] == second and meta["trained_as"].startswith("trained-")
    assert second in (registry.path(second) / "MODEL_CARD.md").read_text()
    assert sorted(p.name for p in registry.path(first).iterdir()) == sorted(
        ["model.joblib", "model.json", "metrics.json", "gains.png", "MODEL_CARD.md"])
    with pytest.raises(ModelNotFoundError, match="no active model version"):
        registry.active_scorer()


def test_promote_and_rollback_move_the_active_version_and_keep_a_history(registry, trained_dirs):
    first, second = (registry.register(d) for d in trained_dirs)
    registry.promote(first)
    assert registry.active() == first
    registry.promote(second)
    assert registry.active() == second and registry.history() == [first]
    assert [v.name for v in registry.list() if v.active] == [second]
    assert registry.rollback() == first
    assert registry.active() == first and registry.history() == []
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    actions = [entry["action"] for entry in json.loads((registry.root / "ACTIVE.json").read_text())["log"]]
    assert actions == ["register", "register", "promote", "promote", "rollback"]
    assert not list(registry.root.glob(".active-*")) and not list(registry.root.glob(".incoming-*"))


def test_the_active_scorer_follows_a_promotion_made_elsewhere_without_a_new_registry(registry, trained_dirs):
    first, second = (registry.register(d) for d in trained_dirs)
    registry.promote(first)
    before = registry.active_scorer()
    assert before.version == first
    assert registry.active_scorer() is before                       # cached: no reload per call
    ModelRegistry(registry.root).promote(second)                     # another process, say
    after = registry.active_scorer()
    assert after.version == second and after is not before
    frame = generate_leads(20, 9)
    assert not (before.predict_proba(frame) == after.predict_proba(frame)).all()
    ModelRegistry(registry.root).rollback()
    assert registry.active_scorer() is before


def test_the_active_pointer_survives_a_new_registry_instance(registry, trained_dirs):
    first, second = (registry.register(d) for d in trained_dirs)
    registry.promote(second)
    reopened = ModelRegistry(registry.root)
    assert reopened.active() == second and reopened.versions() == [first, second]
    assert reopened.load().version == second and reopened.load(first).version == first
    assert reopened.load(first) is reopened.load(first)


def test_with_a_check_interval_the_pointer_is_rechecked_only_when_it_is_due(registry, trained_dirs, monkeypatch):
    class Clock:
        now = 1000.0

        def monotonic(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(registry_module, "time", clock)
    first, second = (registry.register(d) for d in trained_dirs)
    registry.promote(first)
    lazy = ModelRegistry(registry.root, check_interval_s=30)
    assert lazy.active_scorer().version == first
    registry.promote(second)
    clock.now += 10
    assert lazy.active_scorer().version == first                    # not due yet
    clock.now += 25
    assert lazy.active_scorer().version == second


def test_unknown_versions_and_non_model_directories_are_refused(registry, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model version 'v0042"):
        registry.promote("v0042-20260101T000000Z")
    (tmp_path / "junk").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a trained model directory: model.joblib is missing"):
        registry.register(tmp_path / "junk")
    assert registry.versions() == []


def test_the_default_model_is_trained_once_and_labelled_synthetic(tmp_path, monkeypatch):
    registry = ModelRegistry(tmp_path / "models")
    version = ensure_default_model(registry, rows=2000, seed=7, cv=3)
    assert version.endswith("-synthetic") and "synthetic" in version
    assert registry.active() == version
    meta = json.loads((registry.path(version) / "model.json").read_text())
    assert meta["synthetic"] is True and meta["version"] == version
    assert "SYNTHETIC DATA — not trained on your leads" in (registry.path(version) / "MODEL_CARD.md").read_text()
    scorer = registry.active_scorer()
    assert scorer.synthetic and scorer.predict_proba(generate_leads(10, 1)).shape == (10,)
    assert not list(registry.root.glob(".train-*"))

    def no_training(*args, **kwargs):
        raise AssertionError("ensure_default_model retrained a non-empty registry")

    monkeypatch.setattr(training, "train_frame", no_training)
    assert ensure_default_model(registry, rows=2000, seed=7, cv=3) == version
    assert ensure_default_model(ModelRegistry(registry.root)) == version
    assert registry.versions() == [version]


def test_the_generator_is_deterministic_with_the_documented_base_rate():
    leads = generate_leads(5000, seed=3)
    assert leads.equals(generate_leads(5000, seed=3))
    assert not leads.equals(generate_leads(5000, seed=4))
    assert 0.10 < leads[LABEL].mean() < 0.14
    assert {"industry", "company_size", "seniority", "region", "source", "consented_channels",
            "email_domain_type", "engagement_events_30d", "days_since_last_activity"} <= set(leads.columns)
    assert leads["company_size"].isna().any() and leads["days_since_last_activity"].isna().any()


@pytest.mark.parametrize("title, level", [
    ("Chief Marketing Officer", "c_level"), ("VP Marketing", "vp"), ("Vice President of Sales", "vp"),
    ("Head of Growth", "director"), ("Team Lead", "manager"), ("Software Engineer", "individual"),
    ("", "unknown"), (None, "unknown"), ("Astronaut", "unknown"),
])
def test_seniority_is_read_from_the_job_title(title, level):
    assert seniority_from_title(title) == level
