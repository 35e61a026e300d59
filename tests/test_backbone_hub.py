"""A hub id resolves to the same backbone spec whether its files were cached or are fetched now (issue 19).

The hub is simulated: ``hf_hub_download`` is replaced by a copy from a local checkpoint folder into a
snapshot folder, exactly the layout the real cache has. Nothing touches the network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub.errors import EntryNotFoundError

from meit.errors import ModelError, OfflineError
from meit.models import backbones
from meit.models.backbones import resolve_backbone
from meit.models.loading import source_folder

HUB_ID = "someone/tiny-chat-model"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """(snapshot folder, calls): a hub serving the tiny Llama checkpoint, which has a chat template."""
    origin = Path(source_folder(resolve_backbone("tiny-llama")))
    snapshot = tmp_path / "snapshots" / "abc123"
    calls: list[str] = []

    def download(repo_id: str, filename: str, **kwargs) -> str:
        assert repo_id == HUB_ID
        calls.append(filename)
        if not (origin / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        snapshot.mkdir(parents=True, exist_ok=True)
        shutil.copy(origin / filename, snapshot / filename)
        return str(snapshot / filename)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    monkeypatch.setattr(backbones, "cached_hub_folder", lambda hub_id: snapshot if snapshot.is_dir() else None)
    return snapshot, calls


def test_fetched_and_cached_hub_ids_get_the_same_template(fake_hub, monkeypatch):
    _, calls = fake_hub
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    fetched = resolve_backbone(HUB_ID)
    assert calls[0] == "config.json" and set(calls) <= set(backbones.SPEC_FILES)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = resolve_backbone(HUB_ID)
    assert fetched.template == cached.template == "chat"
    assert (fetched.family, fetched.source) == (cached.family, cached.source) == ("llama", HUB_ID)


def test_offline_and_uncached_is_a_clear_error(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE is set and it is not in the local cache"):
        resolve_backbone(HUB_ID)


def test_a_hub_id_without_config_is_a_model_error(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def missing(repo_id: str, filename: str, **kwargs) -> str:
        raise EntryNotFoundError(f"{filename} not in {repo_id}")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", missing)
    with pytest.raises(ModelError, match="cannot fetch its config"):
        resolve_backbone(HUB_ID)
