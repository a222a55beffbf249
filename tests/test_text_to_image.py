"""Tests for helpers.text_to_image: the loop equals diffusers' pipeline, guidance against the empty
prompt, the caption-table U-Net, Stable Diffusion's scheduler, offline loading."""

import pytest
import torch

from helpers import diffusion, diffusion_training, latent
from helpers import text_conditioning as tc
from helpers import text_to_image as t2i

CORPUS = [
    "mostly brown stain and few nuclei",
    "no brown stain, many nuclei",
    "some dab staining",
] * 4


@pytest.fixture(scope="module")
def pipe():
    tok = tc.train_tokenizer(CORPUS, vocab_size=300, context=12)
    clip_cfg = tc.CLIPConfig(
        context=12, hidden=16, layers=1, heads=2, image_width=4, embed_dim=8, vocab_size=300
    )
    text = tc.TextImageCLIP(tok, clip_cfg, seed=0).text_model.eval()
    vae = latent.make_autoencoder(
        latent.AutoencoderConfig(size=16, channels=(4, 8, 8)), seed=0
    ).eval()
    vae.register_to_config(scaling_factor=0.7)
    cfg = t2i.LatentDiffusionConfig.preset("smoke")
    unet = t2i.make_unet(cfg, in_channels=4, sample_size=4, cross_attention_dim=16, seed=0).eval()
    with torch.no_grad():  # a random U-Net predicts ε ≈ 0; make its output matter
        unet.conv_out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return t2i.assemble_pipeline(vae, text, tok, unet, t2i.make_scheduler(1000))


@pytest.mark.parametrize("w", [0.0, 2.5])
def test_written_out_loop_equals_the_assembled_stable_diffusion_pipeline(pipe, w):
    prompts = ["mostly brown stain and few nuclei", "some dab staining"]
    mine = t2i.sample(pipe, prompts, guidance=w, steps=5, seed=3)
    theirs = pipe(prompts, num_inference_steps=5, guidance_scale=1 + w, output_type="pt",
                  generator=torch.Generator().manual_seed(3)).images  # fmt: skip
    assert mine.shape == theirs.shape == (2, 3, 16, 16)
    assert torch.allclose(mine, theirs, atol=1e-5)
    lat_mine = t2i.sample(pipe, prompts, guidance=w, steps=5, seed=3, output="latents")
    lat_theirs = pipe(prompts, num_inference_steps=5, guidance_scale=1 + w, output_type="latent",
                      generator=torch.Generator().manual_seed(3)).images  # fmt: skip
    assert torch.allclose(lat_mine, lat_theirs, atol=1e-5)
    assert not torch.allclose(mine, t2i.sample(pipe, prompts, guidance=w, steps=5, seed=4))


def test_guidance_is_against_the_empty_prompt(pipe):
    prompt = ["mostly brown stain and few nuclei"]
    # w = −1 leaves only the unconditional prediction: the empty prompt's sample
    uncond = t2i.sample(pipe, prompt, guidance=-1.0, steps=4, seed=0, output="latents")
    empty = pipe([""], num_inference_steps=4, guidance_scale=1.0, output_type="latent",
                 generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    assert torch.allclose(uncond, empty, rtol=1e-4, atol=1e-4)
    # one guided step by hand: (1 + w) ε(prompt) − w ε(empty prompt), then DDIM
    ids = tc.tokenize(pipe.tokenizer, prompt)
    null = tc.tokenize(pipe.tokenizer, [""], allow_empty=True)
    with torch.no_grad():
        ctx_c, ctx_u = pipe.text_encoder(ids)[0], pipe.text_encoder(null)[0]
        x = torch.randn((1, 4, 4, 4), generator=torch.Generator().manual_seed(0))
        t, t_prev = (v[0].item() for v in t2i.timesteps(pipe.scheduler, 1))
        eps = diffusion.classifier_free_guidance(
            pipe.unet(x, t, ctx_c).sample, pipe.unet(x, t, ctx_u).sample, 2.0
        )
        by_hand = diffusion.ddim_step(
            eps, torch.tensor([t]), t_prev, x, t2i.schedule_of(pipe.scheduler)
        )
    assert torch.allclose(
        t2i.sample(pipe, prompt, guidance=2.0, steps=1, seed=0, output="latents"),
        by_hand,
        atol=1e-5,
    )


def test_sample_refuses_long_and_empty_prompts(pipe):
    with pytest.raises(ValueError, match="longer than the context of 12"):
        t2i.sample(pipe, ["brown stain and few nuclei " * 4], guidance=1.0, steps=2)
    with pytest.raises(ValueError, match="empty prompt"):
        t2i.sample(pipe, [""], guidance=1.0, steps=2)
    with pytest.raises(ValueError, match="output"):
        t2i.sample(pipe, ["brown"], guidance=1.0, steps=2, output="pixels")


def test_scheduler_timesteps_and_schedule_match_diffusers():
    sched = t2i.make_scheduler(1000)
    for steps in (1, 7, 25, 50):
        t, t_prev = t2i.timesteps(sched, steps)
        sched.set_timesteps(steps)
        assert torch.equal(t, sched.timesteps)
        assert int(t[-1]) == 1 and int(t_prev[-1]) == 0  # steps_offset=1, set_alpha_to_one=False
    s = t2i.schedule_of(sched)
    assert torch.allclose(s.alpha_bars, sched.alphas_cumprod.float(), atol=1e-6)
    assert s.betas[0] == pytest.approx(0.00085, rel=1e-4) and s.betas[-1] == pytest.approx(
        0.012, rel=1e-4
    )


def test_ddim_steps_match_the_scheduler_step():
    sched = t2i.make_scheduler(1000)
    sched.set_timesteps(10)
    s = t2i.schedule_of(sched)
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    for t, t_prev in zip(*t2i.timesteps(sched, 10), strict=True):
        ours = diffusion.ddim_step(eps, torch.full((2,), int(t)), int(t_prev), x, s)
        theirs = sched.step(eps, int(t), x).prev_sample
        assert torch.allclose(ours, theirs, atol=1e-5), int(t)


def test_caption_table_unet_null_label_is_the_empty_caption():
    cfg = t2i.LatentDiffusionConfig.preset("smoke")
    unet = t2i.make_unet(cfg, in_channels=4, sample_size=4, cross_attention_dim=8, seed=0).eval()
    states = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(0))  # 3 captions + empty
    net = t2i.CaptionTableUNet(unet, states)
    assert net.num_classes == 3 and "states" not in net.state_dict()
    x, t = torch.randn(2, 4, 4, 4), torch.tensor([5, 700])
    with torch.no_grad():
        assert torch.allclose(
            net(x, t, y=torch.tensor([1, 3])),
            unet(x, t, encoder_hidden_states=states[[1, 3]]).sample,
        )
        assert torch.allclose(net(x, t), net(x, t, y=torch.tensor([3, 3])))  # None means null
    y, _, dropped = diffusion.drop_condition(net, torch.tensor([0, 1, 2, 0]), None, 1.0, batch=4)
    assert dropped.all() and (y == 3).all()
    with pytest.raises(ValueError, match=r"x must be \(B, 4, h, w\) latents"):
        net(torch.randn(2, 3, 4, 4), t)
    with pytest.raises(ValueError, match="labels in"):
        net(x, t, y=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="not a vector cond"):
        net(x, t, cond=torch.zeros(2, 8))
    with pytest.raises(ValueError, match="cross-attends to 8"):
        t2i.CaptionTableUNet(unet, torch.zeros(3, 6, 5))


def test_latents_train_with_the_kits_loop_only_without_the_range_check():
    cfg = t2i.LatentDiffusionConfig.preset("smoke")
    states = torch.randn(3, 6, 8, generator=torch.Generator().manual_seed(0))
    net = t2i.CaptionTableUNet(
        t2i.make_unet(cfg, in_channels=4, sample_size=4, cross_attention_dim=8, seed=0), states
    )
    z = 3 * torch.randn(8, 4, 4, 4, generator=torch.Generator().manual_seed(1))  # outside [-1, 1]
    labels = torch.arange(8) % 2
    sched = t2i.schedule_of(t2i.make_scheduler(100))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        diffusion_training.train(
            net, z, schedule=sched, steps=2, batch_size=4, labels=labels, progress=False
        )
    result = diffusion_training.train(net, z, schedule=sched, steps=2, batch_size=4, labels=labels,
                                      progress=False, check_range=False)  # fmt: skip
    assert len(result.loss_history) == 2


def test_config_validation():
    for p in ("smoke", "laptop", "gpu"):
        t2i.LatentDiffusionConfig.preset(p)
    with pytest.raises(ValueError, match="divisible by head_dim"):
        t2i.LatentDiffusionConfig(channels=(30, 64), head_dim=8)
    with pytest.raises(ValueError, match="cond_drop"):
        t2i.LatentDiffusionConfig(cond_drop=1.0)
    with pytest.raises(ValueError, match="not divisible by 2"):
        t2i.make_unet(
            t2i.LatentDiffusionConfig.preset("smoke"),
            in_channels=4,
            sample_size=5,
            cross_attention_dim=8,
        )


def test_stable_diffusion_is_never_downloaded_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert t2i.find_stable_diffusion() is None
    with pytest.raises(RuntimeError, match="StableDiffusionPipeline.from_pretrained"):
        t2i.load_stable_diffusion()
