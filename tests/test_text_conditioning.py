"""Tests for helpers.text_conditioning: captions from pixels, the tokenizer, the CLIP-style model."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import runtime
from helpers import text_conditioning as tc

CORPUS = [
    "mostly brown stain and few nuclei",
    "some brown stain, many nuclei",
    "no dab staining",
] * 4


@pytest.fixture(scope="module")
def tokenizer():
    return tc.train_tokenizer(CORPUS, vocab_size=300, context=16)


def _solid(rgb, size=8):
    return torch.tensor(rgb, dtype=torch.float32)[:, None, None].expand(3, size, size)


def test_pixel_classes_and_attributes_on_known_colours():
    brown, blue, pale = (
        _solid([0.55, 0.35, 0.15]),
        _solid([0.35, 0.45, 0.85]),
        _solid([0.95, 0.95, 0.95]),
    )
    grey = _solid([0.6, 0.6, 0.58])  # washed out: neither stain nor background
    classes = tc.pixel_classes(torch.stack([brown, blue, pale, grey]))
    assert [int(c.unique()) for c in classes] == [0, 1, 2, 3]
    half = brown.clone()
    half[:, :, :4] = blue[:, :, :4]  # half brown, half nuclei
    attrs = tc.attributes(torch.stack([brown, blue, pale, half, grey]))
    assert attrs.tolist() == [[2, 0], [0, 1], [0, 0], [1, 1], [0, 0]]  # a blur is not nuclei
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        tc.pixel_classes(torch.rand(2, 1, 8, 8))


def test_captions_name_the_attributes_in_varied_wording():
    attrs = torch.tensor([[2, 1]] * 40)
    caps = tc.describe(attrs, style="descriptive", generator=torch.Generator().manual_seed(0))
    assert len(set(caps)) > 5  # several phrasings
    assert all(any(s in c for s in tc.STAIN[2]) and any(n in c for n in tc.NUCLEI[1]) for c in caps)
    short = tc.describe(attrs, style="short", generator=torch.Generator().manual_seed(0))
    assert all(c in tc.STAIN[2] + tc.NUCLEI[1] for c in short)
    assert {c in tc.STAIN[2] for c in short} == {True, False}  # both attributes get named
    caps2, index = tc.caption_set(torch.tensor([[0, 0], [1, 1]]), per_image=3, seed=1)
    assert index.tolist() == [0, 0, 0, 1, 1, 1] and len(caps2) == 6
    unseen = tc.prompt(2, 1, wording="unseen")
    assert all(u not in c for u in (tc.UNSEEN_STAIN[2], tc.UNSEEN_NUCLEI[1]) for c in caps)
    assert tc.UNSEEN_STAIN[2] in unseen
    with pytest.raises(ValueError, match="style"):
        tc.describe(attrs, style="long")
    with pytest.raises(ValueError, match="stain levels"):
        tc.describe(torch.tensor([[3, 0]]))


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.-", min_size=1, max_size=12))
def test_tokenizer_round_trip(tokenizer, text):
    if not text.strip():
        return
    ids = tc.tokenize(tokenizer, [text])[0]
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id in ids.tolist()
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_lowercases_and_pads_to_the_context(tokenizer):
    ids = tc.tokenize(tokenizer, ["Brown STAIN", "few nuclei and no dab staining at all"])
    assert ids.shape == (2, 16) and ids[0, -1] == tokenizer.pad_token_id
    assert tokenizer.decode(ids[0], skip_special_tokens=True) == "brown stain"
    # words learnt from the corpus are single tokens
    assert "Ġnuclei" in tokenizer.convert_ids_to_tokens(ids[1].tolist())


def test_tokenize_refuses_long_and_empty_prompts(tokenizer):
    with pytest.raises(
        ValueError, match=r"tokens with <bos> and <eos>, longer than the context of 16"
    ):
        tc.tokenize(tokenizer, ["brown stain " * 20])
    with pytest.raises(ValueError, match="empty prompt"):
        tc.tokenize(tokenizer, ["brown", "  "])
    empty = tc.tokenize(tokenizer, [""], allow_empty=True)[0]
    assert empty[:2].tolist() == [tokenizer.bos_token_id, tokenizer.eos_token_id]
    assert (empty[2:] == tokenizer.pad_token_id).all()
    with pytest.raises(TypeError):
        tc.tokenize(tokenizer, [3])
    with pytest.raises(ValueError, match="empty list"):
        tc.tokenize(tokenizer, [])


def test_clip_loss_is_symmetric_cross_entropy():
    g = torch.Generator().manual_seed(0)
    a, b = (
        F.normalize(torch.randn(5, 8, generator=g), dim=1),
        F.normalize(torch.randn(5, 8, generator=g), dim=1),
    )
    scale = torch.tensor(2.0)
    logits = scale.exp() * a @ b.T
    expected = (
        F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.T, torch.arange(5))
    ) / 2
    assert torch.allclose(tc.clip_loss(a, b, scale), expected)
    assert torch.allclose(tc.clip_loss(a, b, scale), tc.clip_loss(b, a, scale))
    with pytest.raises(ValueError, match="one shape"):
        tc.clip_loss(a, b[:3], scale)


def test_retrieval_counts_same_attributes_and_states_chance():
    attrs = torch.tensor([[0, 0], [0, 0], [2, 1], [1, 1]])
    emb = torch.eye(4)
    perfect = tc.retrieval(emb, emb, attrs, attrs)
    assert perfect["image_to_text"].tolist() == [1, 1, 1, 1]
    assert perfect["chance_image_to_text"] == pytest.approx((0.5 + 0.5 + 0.25 + 0.25) / 4)
    # texts in reverse order: image 0 finds the text of image 0 at the last place, still right
    shuffled = tc.retrieval(emb, emb.flip(0), attrs, attrs.flip(0))
    assert shuffled["text_to_image"].tolist() == [1, 1, 1, 1]
    swapped = tc.retrieval(
        emb, emb[[2, 3, 0, 1]], attrs, attrs
    )  # image i retrieves text of another
    assert swapped["image_to_text"].tolist() == [0, 0, 0, 0]


def test_clip_model_trains_caches_and_scores(tokenizer):
    cfg = tc.CLIPConfig(context=32, hidden=16, layers=1, heads=2, image_width=4, embed_dim=8, steps=3,
                        batch_size=4, vocab_size=300)  # fmt: skip
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    attrs = tc.attributes(images)
    caps, index = tc.caption_set(attrs, per_image=2, seed=0)
    model, hist = tc.load_or_train_clip(
        images, caps, index, cfg, seed=0, cache_key=("t",), device="cpu", progress=False
    )
    assert len(hist) == 3 and all(math.isfinite(v) for v in hist)
    assert runtime.cache_path("06_clip", cfg, 0, "t").exists()
    again, hist2 = tc.load_or_train_clip(
        images, caps, index, cfg, seed=0, cache_key=("t",), device="cpu", progress=False
    )
    assert hist2 == pytest.approx(hist)
    ids = tc.tokenize(model.tokenizer, caps[:3])
    assert torch.equal(ids, tc.tokenize(again.tokenizer, caps[:3]))
    with torch.no_grad():
        assert torch.allclose(model.encode_text(ids), again.encode_text(ids), atol=1e-6)
        states = model.token_states(ids)
    assert states.shape == (3, 32, 16)
    e = model.encode_image(images)
    assert e.shape == (6, 8) and torch.allclose(e.norm(dim=1), torch.ones(6), atol=1e-5)
    scores = tc.clip_score(model, images[:2], caps[0])
    assert scores.shape == (2,) and float(scores.abs().max()) <= 1 + 1e-5
    with pytest.raises(ValueError, match="empty prompt"):
        tc.clip_score(model, images[:1], "")
    with pytest.raises(ValueError, match="exceeds the 6 images"):
        tc.train_clip(
            images, caps, index, model.tokenizer, cfg.replace(batch_size=8), progress=False
        )


def test_config_presets_and_validation():
    for p in ("smoke", "laptop", "gpu"):
        tc.CLIPConfig.preset(p)
    with pytest.raises(ValueError, match="not divisible by heads"):
        tc.CLIPConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="steps"):
        tc.CLIPConfig(steps=0)
