"""Tests for helpers.vit: training (through helpers.classifier.fit), accuracy, attention maps."""

import pytest
import torch

from helpers import classifier, vit


def small_cfg(**kw):
    return vit.ViTConfig(
        img_size=8,
        patch_size=4,
        in_chans=1,
        embed_dim=16,
        depth=2,
        num_heads=2,
        num_classes=2,
        **kw,
    )


def toy_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.rand(n, 1, 8, 8, generator=g) * 0.2
    images[labels == 1, :, :4] += 0.8  # class 1: bright top half
    return images.clamp(0, 1), labels


def test_training_learns_a_separable_task_and_is_seeded():
    images, labels = toy_data()
    cfg = small_cfg(epochs=8, batch_size=16, lr=3e-3)
    global_state = torch.get_rng_state()
    m1, l1 = vit.train_vit(images, labels, cfg, seed=0, progress=False)
    assert torch.equal(torch.get_rng_state(), global_state)  # seeds are arguments, not globals
    m2, l2 = vit.train_vit(images, labels, cfg, seed=0, progress=False)
    assert l1 == l2  # same seed, same run
    assert l1[-1] < l1[0]
    assert classifier.accuracy(m1, images, labels) >= 0.95


def test_augmentation_path_runs():
    images, labels = toy_data(16)
    _, losses = vit.train_vit(
        images, labels, small_cfg(epochs=1), seed=0, augment=True, progress=False
    )
    assert len(losses) == 1


def test_attention_maps_shapes_and_rows():
    torch.manual_seed(0)
    model = vit.TinyViT(vit.ViTConfig(img_size=16, patch_size=4, depth=3, embed_dim=32)).eval()
    x = torch.rand(5, 1, 16, 16)
    ws = vit.attention_weights(model, x)
    assert len(ws) == 3 and ws[0].shape == (5, 4, 17, 17)
    last = vit.cls_attention(model, x)
    assert (
        last.shape == (5, 4, 4)
        and torch.all(last >= 0)
        and torch.all(last.flatten(1).sum(1) <= 1 + 1e-5)
    )
    roll = vit.attention_rollout(model, x)
    assert roll.shape == (5, 4, 4)
    # with residual = 1 the rollout is the identity: the class token attends only to itself
    assert torch.allclose(vit.attention_rollout(model, x, residual=1.0), torch.zeros(5, 4, 4))


def test_rollout_single_layer_formula():
    torch.manual_seed(0)
    model = vit.TinyViT(
        vit.ViTConfig(img_size=8, patch_size=4, depth=1, embed_dim=16, num_heads=2)
    ).eval()
    x = torch.rand(2, 1, 8, 8)
    a = vit.attention_weights(model, x)[0].mean(1)
    expected = 0.5 * a + 0.5 * torch.eye(5)  # rows already sum to 1
    torch.testing.assert_close(vit.attention_rollout(model, x), expected[:, 0, 1:].reshape(2, 2, 2))


def test_bad_inputs():
    images, labels = toy_data(8)
    with pytest.raises(ValueError, match="images must have shape"):
        vit.train_vit(images[:, :, :4], labels, small_cfg(), seed=0, progress=False)
    with pytest.raises(ValueError, match="labels must lie"):
        vit.train_vit(images, labels + 5, small_cfg(), seed=0, progress=False)
    model = vit.TinyViT(small_cfg())
    with pytest.raises(ValueError, match="residual"):
        vit.attention_rollout(model, images, residual=2.0)


def test_classifier_loop_refuses_integer_nan_and_empty_images():
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(TypeError, match=r"images.float\(\) / 255"):
        classifier.train_classifier(x.mul(255).to(torch.uint8), y, epochs=1, device="cpu")
    bad = x.clone()
    bad[2, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="images holds 1 non-finite"):
        classifier.train_classifier(bad, y, epochs=1, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        classifier.train_classifier(x[:0], y[:0], epochs=1, device="cpu")
    with pytest.raises(ValueError, match="labels must be class indices ≥ 0"):
        classifier.train_classifier(x, torch.tensor([0, -1, 0, 1]), epochs=1, device="cpu")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        classifier.train_classifier(x, y, num_classes=0, epochs=1, device="cpu")  # not "None"
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        classifier.predict(classifier.SmallCNN(1, 2), x, batch_size=0)


def test_classifier_loss_that_becomes_non_finite_names_the_epoch():
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    net = classifier.SmallCNN(1, 2, seed=0)
    net.head.register_forward_hook(lambda m, i, o: o * float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1 of 2"):
        classifier.fit(net, x, y, epochs=2, batch_size=2)


def test_fit_callback_sees_every_epoch_in_eval_mode_and_training_resumes():
    images, labels = toy_data(32)
    model = vit.TinyViT(small_cfg(), seed=0)
    seen = []

    def callback(epoch, m):
        seen.append((epoch, m.training, torch.is_grad_enabled()))

    losses = classifier.fit(
        model, images, labels, epochs=3, batch_size=16, seed=0, callback=callback
    )
    assert seen == [(1, False, False), (2, False, False), (3, False, False)]
    # the callback does not change the run: same losses without it
    again = classifier.fit(
        vit.TinyViT(small_cfg(), seed=0), images, labels, epochs=3, batch_size=16, seed=0
    )
    assert losses == again
