"""Notebook 08's presets: validation, and the gpu profile's shapes exercised on CPU with tiny
step counts (the gpu profile has never run on a GPU here)."""

import pytest
import torch

from helpers import datasets, ood, perceptual, radiomics, self_supervised, vit
from helpers.course import experiments
from helpers.datasets import brain_volumes


def test_presets_and_validation():
    smoke, laptop = (experiments.MeasuringExperiment.preset(p) for p in ("smoke", "laptop"))
    assert laptop.clf_seeds >= 5 and laptop.n_test_triplets > smoke.n_test_triplets
    for profile in ("smoke", "laptop", "gpu"):
        exp = experiments.MeasuringExperiment.preset(profile)
        assert exp.size == self_supervised.SSLConfig.preset(profile).size  # the notebook asserts it
    with pytest.raises(ValueError, match="k=9"):
        experiments.MeasuringExperiment(k=9, n_vol_train=5)
    with pytest.raises(ValueError, match="divisible by 8"):
        experiments.MeasuringExperiment(vol_size=44)
    with pytest.raises(ValueError, match="target_accuracy"):
        experiments.MeasuringExperiment(target_accuracy=1.5)


def test_gpu_profile_shapes_on_cpu():
    exp = experiments.MeasuringExperiment.preset("gpu")
    image = datasets.skimage_image("immunohistochemistry")
    held = perceptual.make_triplets(
        image,
        n_per_family=1,
        size=exp.size,
        columns=datasets.histology_columns("test"),
        pool=exp.pool,
        seed=0,
    )
    assert held.reference.shape == (5, 3, exp.size, exp.size)
    cfg = vit.ViTConfig.preset(
        "gpu",
        img_size=exp.size,
        patch_size=exp.size // 4,
        in_chans=3,
        num_classes=2,
        depth=exp.vit_depth,
        epochs=1,
    )
    assert vit.TinyViT(cfg, seed=0).tokens(held.reference).shape[1] == 17
    vols, _ = brain_volumes.generate(1, exp.vol_size, seed=0)
    assert brain_volumes.corrupt(vols, "local_anomaly").shape == (1,) + (exp.vol_size,) * 3
    ae_cfg = ood.AEConfig.preset("gpu")
    ae = ood.SliceAutoencoder(ae_cfg.width, ae_cfg.latent, seed=0)
    assert ood.reconstruction_scores(ae, ood.normalise_intensities(vols))[0].shape == (1,)
    fin_cfg = radiomics.FINConfig.preset("gpu")
    fin = radiomics.FIN(fin_cfg.hidden, fin_cfg.window, fin_cfg.stride, seed=0)
    logits = radiomics.FINClassifier(fin, seed=0)(torch.rand(2, 1, exp.slice_size, exp.slice_size))
    assert logits.shape == (2, 2)
