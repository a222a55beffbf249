"""helpers.embedding_prior: prompts, the denoiser, fitting and sampling."""

import pytest
import torch

from helpers import embedding_prior


def test_prompt_to_label():
    assert embedding_prior.prompt_to_label("brown DAB-positive tissue") == 1
    assert embedding_prior.prompt_to_label("Blue nuclei.") == 0
    with pytest.raises(ValueError, match="vocabulary"):
        embedding_prior.prompt_to_label("a cat")
    with pytest.raises(TypeError):
        embedding_prior.prompt_to_label(3)


def test_denoiser_shapes():
    net = embedding_prior.EmbeddingDenoiser(6, num_classes=2, hidden=16)
    out = net(torch.randn(4, 6, 1, 1), torch.tensor([0, 1, 2, 3]), y=torch.tensor([0, 1, 2, 1]))
    assert out.shape == (4, 6, 1, 1) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match=r"x must be \(B, 6, 1, 1\)"):
        net(torch.randn(4, 5, 1, 1), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels in \[0, 2\].*got values from 0 to 5"):
        net(torch.randn(4, 6, 1, 1), torch.tensor([0, 1, 2, 3]), y=torch.tensor([0, 1, 5, 1]))


def test_prior_learns_two_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]), dim=1)
    labels = torch.arange(200) % 2
    emb = torch.nn.functional.normalize(
        centres[labels] + 0.05 * torch.randn(200, 4, generator=g), dim=1
    )
    prior = embedding_prior.EmbeddingPrior(4, num_classes=2, hidden=64, T=100)
    with pytest.raises(RuntimeError):
        prior.sample(torch.tensor([0]))
    prior.fit(emb, labels, steps=400, batch_size=64, progress=False)
    z = prior.sample(torch.tensor([0] * 8 + [1] * 8), steps=20, guidance=1.0)
    assert z.shape == (16, 4) and torch.allclose(z.norm(dim=1), torch.ones(16), atol=1e-5)
    sim = z @ centres.T  # (16, 2)
    assert float((sim.argmax(1) == torch.tensor([0] * 8 + [1] * 8)).float().mean()) >= 0.8
