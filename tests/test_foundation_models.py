"""Tests for helpers.foundation_models: the registry and offline loading errors."""

import pytest

from helpers import foundation_models as fm

CHAPTER = {"CTransPath", "UNI", "CONCH", "Virchow", "RudolfV", "Campanella", "Prov-GigaPath"}


def test_registry_covers_the_chapter():
    assert set(fm.REGISTRY) == CHAPTER
    for m in fm.REGISTRY.values():
        assert 2020 <= m.year <= 2025 and m.architecture and m.training_data and m.reference
        assert m.loader in {"timm", "package", "unreleased"}
    assert fm.REGISTRY["Prov-GigaPath"].hub_id == "hf_hub:prov-gigapath/prov-gigapath"
    rows = fm.table()
    assert len(rows) == 7 and set(rows[0]) == {
        "model",
        "year",
        "architecture",
        "parameters",
        "training data",
        "how to load",
    }
    assert "init_values=1e-5" in fm.REGISTRY["UNI"].how_to_load()


def test_loading_fails_offline_with_explanation():
    with pytest.raises(RuntimeError, match="allow_network=False.*gated"):
        fm.load("UNI")
    with pytest.raises(RuntimeError, match="not publicly released"):
        fm.load("RudolfV", allow_network=True)
    with pytest.raises(RuntimeError, match="cannot be loaded with timm"):
        fm.load("CONCH")
    with pytest.raises(KeyError, match="known"):
        fm.load("GPT")


def test_every_model_states_its_parameters_with_their_source():
    for m in fm.REGISTRY.values():
        assert m.parameters and ("timm" in m.parameters or "paper" in m.parameters), m.name
        assert m.backbones, m.name


@pytest.mark.parametrize("name", ["UNI", "Virchow", "Prov-GigaPath", "Campanella"])
def test_quoted_parameter_counts_are_the_timm_counts(name):
    """Each count quoted is what timm builds for that architecture (on the meta device)."""
    for arch, count in fm.count_parameters(name).items():
        millions = count / 1e6
        quoted = f"{millions / 1000:.2f} B" if millions >= 1000 else f"{millions:.3g} M"
        text = fm.REGISTRY[name].parameters
        assert quoted in text or f"{millions:.0f} M" in text, (arch, quoted, text)
