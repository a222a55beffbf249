"""helpers.classifier: the penultimate features that a Fréchet distance reads."""

import pytest
import torch

from helpers import classifier


def test_features_are_what_the_head_reads():
    net = classifier.SmallCNN(1, 10, width=4, seed=0).eval()
    x = torch.rand(7, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    f = classifier.features(net, x, batch_size=3)  # several batches
    assert f.shape == (7, 8)
    with torch.no_grad():
        pooled = net.features(x).mean(dim=(2, 3))
        torch.testing.assert_close(f, pooled)
        torch.testing.assert_close(net.head(f), net(x))
    assert not net._forward_pre_hooks and not net.head._forward_pre_hooks  # the hook is removed


def test_features_needs_a_head():
    with pytest.raises(TypeError, match="model.head"):
        classifier.features(torch.nn.Linear(3, 2), torch.zeros(1, 3))
