"""Text as a condition: captions measured from images, a BPE tokenizer, a CLIP-style text encoder.

The text side of Stable Diffusion at course scale, in three steps:

1. **Captions from measurable properties.** Every pixel of a histology patch is called brown
   (DAB stain), blue (haematoxylin: nuclei), pale (background, empty stroma) or none of these from
   its colour (:func:`pixel_classes`, scikit-image's colour deconvolution ``rgb2hed``); the shares
   give two
   attributes, the stain level and the nuclei level (:func:`attributes`), which :func:`describe`
   turns into a caption in one of several phrasings. ``style="short"`` names one attribute only,
   as alt-text does; ``"descriptive"`` names both (DALL·E 3's recaptioning lesson).
   :data:`UNSEEN_STAIN` and friends hold wordings that no training caption uses.
2. **A tokenizer** trained offline with the ``tokenizers`` library: byte-level BPE (as CLIP's and
   GPT-2's), wrapped as a ``transformers`` fast tokenizer so that diffusers' pipelines can call it
   (:func:`train_tokenizer`). :func:`tokenize` pads to the context and refuses what does not fit
   (diffusers truncates silently with a warning) and, unless asked, the empty prompt.
3. **A text encoder trained CLIP-style** (Radford et al. 2021): ``transformers``' ``CLIPTextModel``
   with a tiny config and an image encoder (:class:`helpers.self_supervised.Encoder`), each followed
   by a linear projection; the symmetric contrastive loss (:func:`clip_loss`) asks each image to
   pick out its caption among the batch's captions and each caption its image.
   :func:`retrieval` measures top-1 retrieval both ways against chance, :func:`clip_score` the
   agreement of generated images with a prompt.

The U-Net of :mod:`helpers.text_to_image` cross-attends to the text model's token states
(``last_hidden_state``), exactly as Stable Diffusion uses CLIP ViT-L/14's.

References
----------
.. [1] A. Radford et al., "Learning Transferable Visual Models From Natural Language
   Supervision", ICML 2021 (CLIP).
.. [2] R. Sennrich, B. Haddow, A. Birch, "Neural Machine Translation of Rare Words with Subword
   Units", ACL 2016 (BPE).
.. [3] J. Betker et al., "Improving Image Generation with Better Captions", OpenAI 2023 (DALL·E 3).
.. [4] A. C. Ruifrok, D. A. Johnston, "Quantification of histochemical staining by color
   deconvolution", Anal. Quant. Cytol. Histol. 23, 2001 (``rgb2hed``).

Examples
--------
>>> import torch
>>> from helpers import text_conditioning as tc
>>> tc.describe(torch.tensor([[2, 1]]), style="descriptive", generator=torch.Generator().manual_seed(0))
['a patch with dense dab staining and many nuclei']
>>> tok = tc.train_tokenizer(["brown stain", "few nuclei"], vocab_size=300, context=8)
>>> tok.decode(tc.tokenize(tok, ["few brown nuclei"])[0], skip_special_tokens=True)
'few brown nuclei'
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint, runtime
from .optim import lr_at
from .runtime import Presets, seeded
from .self_supervised import Encoder

logger = logging.getLogger(__name__)

__all__ = [
    "NUCLEI",
    "STAIN",
    "TEMPLATES",
    "UNSEEN_NUCLEI",
    "UNSEEN_STAIN",
    "UNSEEN_TEMPLATES",
    "CLIPConfig",
    "TextImageCLIP",
    "attributes",
    "caption_set",
    "clip_loss",
    "clip_score",
    "describe",
    "load_or_train_clip",
    "pixel_classes",
    "prompt",
    "retrieval",
    "tokenize",
    "train_clip",
    "train_tokenizer",
]

# ---------------------------------------------------------------------------------------------
# captions from measurable image properties

STAIN: tuple[tuple[str, ...], ...] = (
    ("no brown stain", "unstained tissue", "no dab staining"),
    ("some brown stain", "partly brown tissue", "patchy dab staining"),
    ("mostly brown stain", "strongly brown tissue", "dense dab staining"),
)
"""Phrasings of the stain level: 0 (brown < 15 % of the patch), 1 (15–60 %), 2 (> 60 %)."""

NUCLEI: tuple[tuple[str, ...], ...] = (
    ("few nuclei", "sparse nuclei", "hardly any blue nuclei"),
    ("many nuclei", "dense nuclei", "lots of blue nuclei"),
)
"""Phrasings of the nuclei level: 0 (blue < 5 % of the patch), 1 (≥ 5 %)."""

TEMPLATES: tuple[str, ...] = (
    "{stain} and {nuclei}",
    "a patch with {stain} and {nuclei}",
    "{nuclei}, {stain}",
    "histology crop showing {stain} with {nuclei}",
)
"""Descriptive caption templates (both attributes)."""

UNSEEN_STAIN: tuple[str, ...] = ("without any brown colour", "half brown", "brown all over")
UNSEEN_NUCLEI: tuple[str, ...] = ("almost no nuclei", "crowded nuclei")
UNSEEN_TEMPLATES: tuple[str, ...] = ("an image of tissue {stain} with {nuclei}",)
"""Wordings that no training caption uses, to test prompts phrased in new ways."""

STAIN_THRESHOLDS = (0.15, 0.60)
NUCLEI_THRESHOLD = 0.05
PALE_LUMINANCE, PALE_SATURATION, DAB_THRESHOLD, BLUE_MARGIN = 0.8, 0.12, 0.03, 0.04


def pixel_classes(images: torch.Tensor) -> torch.Tensor:
    """Call every pixel brown (0), blue (1), pale (2) or neither (3) from its colour.

    Pale: mean of R, G, B above 0.8 and max − min below 0.12 (background, empty stroma). Blue
    (haematoxylin-stained nuclei): not pale and blue exceeding red by more than 0.04. Brown: not
    pale, red exceeding blue by more than 0.04 and the DAB channel of scikit-image's colour
    deconvolution ``rgb2hed`` above 0.03. The rest (greyish, washed-out pixels) is none of the
    three, so a blurred grey image is read neither as stain nor as nuclei.

    Parameters
    ----------
    images : Tensor ``(N, 3, H, W)`` in ``[0, 1]``

    Returns
    -------
    Tensor ``(N, H, W)`` int64 in ``{0, 1, 2, 3}``
    """
    from skimage.color import rgb2hed

    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be an (N, 3, H, W) RGB tensor, got {getattr(images, 'shape', type(images).__name__)}"
        )
    x = images.detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).double().numpy()  # (N, H, W, 3)
    dab = rgb2hed(x, channel_axis=-1)[..., 2]
    pale = (x.mean(-1) > PALE_LUMINANCE) & (x.max(-1) - x.min(-1) < PALE_SATURATION)
    blue = ~pale & (x[..., 2] - x[..., 0] > BLUE_MARGIN)
    brown = ~pale & (x[..., 0] - x[..., 2] > BLUE_MARGIN) & (dab > DAB_THRESHOLD)
    classes = np.select([brown, blue, pale], [0, 1, 2], default=3)
    return torch.from_numpy(classes.astype(np.int64))


def attributes(images: torch.Tensor) -> torch.Tensor:
    """The two caption attributes of each image: ``[stain level, nuclei level]``.

    Stain level 0/1/2 by the brown share (thresholds 0.15 and 0.60), nuclei level 0/1 by the blue
    share (threshold 0.05), both from :func:`pixel_classes`. This rule writes the training
    captions; applied to generated images it is an exact, parameter-free caption classifier.

    Returns
    -------
    Tensor ``(N, 2)`` int64
    """
    classes = pixel_classes(images)
    brown = (classes == 0).float().mean(dim=(1, 2))
    blue = (classes == 1).float().mean(dim=(1, 2))
    stain = torch.bucketize(brown, torch.tensor(STAIN_THRESHOLDS), right=True)
    nuclei = (blue >= NUCLEI_THRESHOLD).long()
    return torch.stack([stain, nuclei], dim=1)


def _check_attributes(attrs: torch.Tensor) -> torch.Tensor:
    attrs = torch.as_tensor(attrs)
    if attrs.ndim != 2 or attrs.shape[1] != 2 or attrs.dtype != torch.long:
        raise ValueError(
            f"attributes must be an (N, 2) int64 tensor [stain, nuclei], got {tuple(attrs.shape)} {attrs.dtype}"
        )
    if attrs.numel() and (
        attrs[:, 0].min() < 0
        or attrs[:, 0].max() >= len(STAIN)
        or attrs[:, 1].min() < 0
        or attrs[:, 1].max() >= len(NUCLEI)
    ):
        raise ValueError(
            f"stain levels must lie in [0, {len(STAIN)}) and nuclei levels in [0, {len(NUCLEI)})"
        )
    return attrs


def prompt(stain: int, nuclei: int, *, wording: str = "seen") -> str:
    """A two-attribute prompt in the first training phrasing (``wording="seen"``) or in words no
    training caption uses (``"unseen"``).

    Examples
    --------
    >>> prompt(2, 1), prompt(0, 0, wording="unseen")
    ('mostly brown stain and many nuclei', 'an image of tissue without any brown colour with almost no nuclei')
    """
    _check_attributes(torch.tensor([[stain, nuclei]]))
    if wording == "seen":
        return TEMPLATES[0].format(stain=STAIN[stain][0], nuclei=NUCLEI[nuclei][0])
    if wording == "unseen":
        return UNSEEN_TEMPLATES[0].format(stain=UNSEEN_STAIN[stain], nuclei=UNSEEN_NUCLEI[nuclei])
    raise ValueError(f"wording must be 'seen' or 'unseen', got {wording!r}")


def describe(
    attrs: torch.Tensor, *, style: str = "descriptive", generator: torch.Generator | None = None
) -> list[str]:
    """One caption per row of ``attrs``, in a phrasing drawn from ``generator``.

    Parameters
    ----------
    attrs : Tensor ``(N, 2)`` int64
        ``[stain level, nuclei level]`` per image (:func:`attributes`).
    style : {"descriptive", "short"}
        ``"descriptive"``: both attributes, in one of :data:`TEMPLATES`. ``"short"``: one
        attribute, chosen at random, alone (as alt-text names one salient thing).
    generator : torch.Generator, optional
        Draws the template, the phrasings and (short) the attribute named.

    Returns
    -------
    list of str
    """
    attrs = _check_attributes(attrs)
    if style not in ("descriptive", "short"):
        raise ValueError(f"style must be 'descriptive' or 'short', got {style!r}")
    draws = torch.rand(len(attrs), 4, generator=generator)  # template, stain, nuclei, which
    pick = lambda options, u: options[min(int(u * len(options)), len(options) - 1)]  # noqa: E731
    out = []
    for (s, n), (u_t, u_s, u_n, u_w) in zip(attrs.tolist(), draws.tolist(), strict=True):
        stain, nuclei = pick(STAIN[s], u_s), pick(NUCLEI[n], u_n)
        if style == "short":
            out.append(stain if u_w < 0.5 else nuclei)
        else:
            out.append(pick(TEMPLATES, u_t).format(stain=stain, nuclei=nuclei))
    return out


def caption_set(
    attrs: torch.Tensor, *, per_image: int = 4, style: str = "descriptive", seed: int = 0
) -> tuple[list[str], torch.Tensor]:
    """``per_image`` captions of each image, so that the wording varies.

    Returns
    -------
    (captions, image_index) : list of ``N·per_image`` str, Tensor ``(N·per_image,)`` int64
        Caption ``k`` describes image ``image_index[k]``.
    """
    if not isinstance(per_image, int) or per_image < 1:
        raise ValueError(f"per_image must be a positive int, got {per_image!r}")
    attrs = _check_attributes(attrs)
    index = torch.arange(len(attrs)).repeat_interleave(per_image)
    captions = describe(attrs[index], style=style, generator=torch.Generator().manual_seed(seed))
    return captions, index


# ---------------------------------------------------------------------------------------------
# tokenizer

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")
"""Ids 0–3: padding (also what the pooled output skips), unknown, start and end of text."""


def train_tokenizer(texts: list[str], *, vocab_size: int = 512, context: int = 16) -> Any:
    """Train a byte-level BPE tokenizer on ``texts`` offline; return it as a ``transformers`` fast
    tokenizer (``PreTrainedTokenizerFast``) that diffusers' pipelines can call.

    Lower-cases and NFKC-normalises, then splits into bytes, so every string encodes (no unknown
    token) and decoding gives the normalised text back. Each encoding is ``<bos> … <eos>``,
    padded with ``<pad>`` to ``context`` tokens by :func:`tokenize`.

    Parameters
    ----------
    texts : list of str
        The training corpus (the captions).
    vocab_size : int
        Target vocabulary: the 256 bytes, the special tokens and the merges learnt.
    context : int
        The context length (``model_max_length``; CLIP's is 77).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer
    from transformers import PreTrainedTokenizerFast

    if not isinstance(texts, list | tuple) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    if not isinstance(context, int) or context < 3:
        raise ValueError(f"context must be an int ≥ 3 (<bos>, a token, <eos>), got {context!r}")
    if not isinstance(vocab_size, int) or vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed {256 + len(SPECIAL_TOKENS)}, got {vocab_size!r}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    bos, eos = tok.token_to_id("<bos>"), tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=context,
    )


def tokenize(
    tokenizer: Any, prompts: list[str] | str, *, allow_empty: bool = False
) -> torch.Tensor:
    """Token ids ``(B, context)`` of ``prompts``, padded; errors instead of silent truncation.

    Raises
    ------
    ValueError
        A prompt longer than the context (the message gives its token count), or an empty prompt
        when ``allow_empty`` is False (the empty prompt is the *null* condition of guidance, not
        something to ask for by accident).
    TypeError
        Prompts that are not strings.
    """
    prompts = [prompts] if isinstance(prompts, str) else prompts
    if not isinstance(prompts, list | tuple) or not all(isinstance(p, str) for p in prompts):
        raise TypeError(
            f"prompts must be a string or a list of strings, got {type(prompts).__name__}"
        )
    if not prompts:
        raise ValueError("prompts is an empty list; give at least one prompt")
    context = tokenizer.model_max_length
    for p in prompts:
        if not allow_empty and not p.strip():
            raise ValueError(
                "empty prompt: describe the image (e.g. 'mostly brown stain and few nuclei'); the "
                "empty prompt is the null condition, used by guidance (allow_empty=True)"
            )
        n = len(tokenizer(p, verbose=False).input_ids)  # verbose=False: no overlength warning
        if n > context:
            raise ValueError(
                f"prompt {p[:40]!r}… is {n} tokens with <bos> and <eos>, longer than the "
                f"context of {context} tokens; shorten it"
            )
    return tokenizer(
        list(prompts), padding="max_length", max_length=context, return_tensors="pt"
    ).input_ids


# ---------------------------------------------------------------------------------------------
# the CLIP-style model


@dataclass(frozen=True)
class CLIPConfig(Presets):
    """The tokenizer, the two towers and their contrastive training.

    Attributes
    ----------
    context, vocab_size : int
        Context length in tokens, and the tokenizer's vocabulary.
    hidden, layers, heads : int
        Width, depth and attention heads of the ``CLIPTextModel`` (the token states the U-Net
        reads have ``hidden`` channels).
    image_width : int
        First-layer channels of the image encoder (:class:`helpers.self_supervised.Encoder`).
    embed_dim : int
        Length of the shared embedding.
    steps, batch_size, lr : int, int, float
        AdamW steps, image–caption pairs per batch, peak learning rate.
    """

    context: int = 32
    vocab_size: int = 384
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    image_width: int = 16
    embed_dim: int = 64
    steps: int = 250
    batch_size: int = 64
    lr: float = 2e-3

    def __post_init__(self) -> None:
        for f in ("context", "vocab_size", "hidden", "layers", "heads", "image_width",
                  "embed_dim", "steps", "batch_size"):  # fmt: skip
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"CLIPConfig.{f} must be a positive int, got {v!r}")
        if self.hidden % self.heads:
            raise ValueError(
                f"CLIPConfig.hidden={self.hidden} is not divisible by heads={self.heads}"
            )
        if self.context < 3 or self.vocab_size <= 260 or not self.lr > 0:
            raise ValueError(
                f"need context ≥ 3, vocab_size > 260, lr > 0; got {self.context}, "
                f"{self.vocab_size}, {self.lr}"
            )

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("steps",)
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, CLIPConfig]:
        """One preset per profile (use ``CLIPConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(hidden=32, layers=1, heads=2, image_width=8, embed_dim=32, steps=10,
                         batch_size=32),
            "laptop": cls(),
            "gpu": cls(hidden=128, layers=4, heads=4, image_width=32, embed_dim=128, steps=3000,
                       batch_size=256, lr=1e-3),
        }  # fmt: skip


class TextImageCLIP(nn.Module):
    """A text tower (``transformers.CLIPTextModel``) and an image tower with linear projections
    into one embedding space, plus the learnt temperature of the logits.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        From :func:`train_tokenizer`.
    config : CLIPConfig
    seed : int, optional
        Initialise every weight from this seed without touching the global random state.

    Attributes
    ----------
    text_model : transformers.CLIPTextModel
        ``text_model(ids).last_hidden_state`` ``(B, context, hidden)``: the token states a U-Net
        cross-attends to.
    image_encoder : helpers.self_supervised.Encoder
    """

    def __init__(self, tokenizer: Any, config: CLIPConfig, *, seed: int | None = None):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        self.tokenizer, self.config = tokenizer, config
        text_config = CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden,
            intermediate_size=4 * config.hidden,
            num_hidden_layers=config.layers,
            num_attention_heads=config.heads,
            max_position_embeddings=config.context,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            projection_dim=config.embed_dim,
        )
        with seeded(seed):
            self.text_model = CLIPTextModel(text_config)
            self.image_encoder = Encoder(3, config.image_width, config.embed_dim)
            self.text_proj = nn.Linear(config.hidden, config.embed_dim, bias=False)
            self.image_proj = nn.Linear(config.embed_dim, config.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial τ = 0.07

    @property
    def device(self) -> torch.device:
        return self.text_proj.weight.device

    def token_states(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, context)`` token ids → ``(B, context, hidden)`` token states (no attention mask:
        the causal mask already keeps padding out of every real token, as in Stable Diffusion)."""
        return self.text_model(ids.to(self.device)).last_hidden_state

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit-length text embeddings ``(B, embed_dim)`` from the ``<eos>`` token's state."""
        pooled = self.text_model(ids.to(self.device)).pooler_output  # (B, hidden) at <eos>
        return F.normalize(self.text_proj(pooled), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings ``(B, embed_dim)`` of images in ``[0, 1]``."""
        return F.normalize(self.image_proj(self.image_encoder(images.to(self.device))), dim=-1)

    def encode_prompts(self, prompts: list[str] | str) -> torch.Tensor:
        """:meth:`encode_text` of :func:`tokenize` (empty or too long prompts raise)."""
        return self.encode_text(tokenize(self.tokenizer, prompts))


def clip_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's symmetric contrastive loss on a batch of matching pairs.

    logits = exp(s)·I·Tᵀ for unit-length rows; the loss is the mean of the cross-entropy of each
    image against all captions (image → text) and of each caption against all images
    (text → image), the match being the diagonal.

    Examples
    --------
    >>> e = torch.eye(3)
    >>> float(clip_loss(e, e, torch.tensor(4.0))) < float(clip_loss(e, e.roll(1, 0), torch.tensor(4.0)))
    True
    """
    if image_emb.shape != text_emb.shape or image_emb.ndim != 2:
        raise ValueError(
            f"need (B, D) image and text embeddings of one shape, got {tuple(image_emb.shape)} "
            f"and {tuple(text_emb.shape)}"
        )
    logits = logit_scale.exp() * image_emb @ text_emb.T  # (B, B): image i vs caption j
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90° rotations and flips (they keep every caption attribute true)."""
    k = int(torch.randint(4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    return x.flip(3) if bool(torch.rand(1, generator=generator) < 0.5) else x


def train_clip(
    images: torch.Tensor,
    captions: list[str],
    image_index: torch.Tensor,
    tokenizer: Any,
    config: CLIPConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[TextImageCLIP, list[float]]:
    """Train a :class:`TextImageCLIP` on image–caption pairs with :func:`clip_loss`.

    Each step draws ``batch_size`` distinct images and one of each image's captions.

    Parameters
    ----------
    images : Tensor ``(N, 3, H, W)`` in ``[0, 1]``
    captions : list of str
        Caption ``k`` belongs to image ``image_index[k]`` (several per image).
    image_index : Tensor ``(K,)`` int64
    tokenizer : from :func:`train_tokenizer`
    config : CLIPConfig
    seed : int
        Seed of the initialisation and of every draw.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool

    Returns
    -------
    (model in eval mode, loss history)
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if len(captions) != len(image_index):
        raise ValueError(f"{len(captions)} captions but {len(image_index)} image indices")
    n = images.shape[0]
    if config.batch_size > n:
        raise ValueError(f"batch_size={config.batch_size} exceeds the {n} images")
    device = torch.device(device) if device is not None else runtime.detect_device()
    model = TextImageCLIP(tokenizer, config, seed=seed).to(device).train()
    ids = tokenize(tokenizer, list(captions)).to(device)  # (K, context)
    per_image = [[] for _ in range(n)]
    for k, i in enumerate(image_index.tolist()):
        per_image[i].append(k)
    if any(not p for p in per_image):
        raise ValueError("every image needs at least one caption")
    counts = torch.tensor([len(p) for p in per_image])
    table = torch.full((n, int(counts.max())), -1, dtype=torch.long)
    for i, p in enumerate(per_image):
        table[i, : len(p)] = torch.tensor(p)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    data, history = images.to(device), []
    bar = tqdm(range(config.steps), disable=not progress, desc="CLIP")
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, config.lr, steps=config.steps, warmup=min(50, config.steps // 5))
        idx = torch.randperm(n, generator=gen)[: config.batch_size]  # distinct images
        pick = (torch.rand(len(idx), generator=gen) * counts[idx]).long()
        caption_ids = ids[table[idx, pick].to(device)]
        loss = clip_loss(
            model.encode_image(_flips(data[idx.to(device)], gen)),
            model.encode_text(caption_ids),
            model.logit_scale,
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP caps the scale at 100
        history.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval(), history


def load_or_train_clip(
    images: torch.Tensor,
    captions: list[str],
    image_index: torch.Tensor,
    config: CLIPConfig,
    *,
    seed: int = 0,
    cache_key: tuple = (),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[TextImageCLIP, list[float]]:
    """Train the tokenizer and :func:`train_clip`, or read both back from the cache.

    The files are ``runtime.cache_path("06_clip", config, seed, *cache_key)`` (safetensors, with
    the tokenizer's JSON in the metadata): ``cache_key`` must name the data (the notebook passes
    its data recipe). Returns the model on ``device`` and the loss history (read back too).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    path = runtime.cache_path("06_clip", config, seed, *cache_key)
    device = torch.device(device) if device is not None else runtime.detect_device()
    if path.exists():
        tensors, meta = checkpoint.read(path)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(meta["tokenizer"]),
            bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
            model_max_length=config.context,
        )  # fmt: skip
        model = TextImageCLIP(tokenizer, config)
        model.load_state_dict(tensors)
        logger.info("loaded the CLIP model from %s", path)
        return model.to(device).eval(), list(meta["loss_history"])
    tokenizer = train_tokenizer(
        list(captions), vocab_size=config.vocab_size, context=config.context
    )
    model, history = train_clip(
        images,
        captions,
        image_index,
        tokenizer,
        config,
        seed=seed,
        device=device,
        progress=progress,
    )
    checkpoint.atomic_save(
        model.state_dict(),
        path,
        meta={
            "config": asdict(config),
            "tokenizer": tokenizer.backend_tokenizer.to_str(),
            "loss_history": history,
        },
    )
    return model, history


# ---------------------------------------------------------------------------------------------
# evaluation: retrieval both ways, CLIP score


@torch.no_grad()
def retrieval(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    image_attrs: torch.Tensor,
    text_attrs: torch.Tensor,
) -> dict[str, torch.Tensor | float]:
    """Top-1 retrieval image → text and text → image, judged by the attributes.

    Each image retrieves the caption with the highest cosine similarity among all ``text_emb``
    (and each caption the most similar image); a retrieval is right when the retrieved item has
    the query's attributes (captions of other images with the same attributes say the same thing).

    Returns
    -------
    dict
        ``"image_to_text"``, ``"text_to_image"``: Tensors ``(N_images,)`` and ``(N_texts,)`` of
        0/1 per query; ``"chance_image_to_text"``, ``"chance_text_to_image"``: the expected rate
        of a random pick, the mean over queries of the share of candidates with the query's
        attributes.
    """
    if image_emb.ndim != 2 or text_emb.ndim != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(
            f"need (N, D) and (M, D) embeddings, got {tuple(image_emb.shape)}, {tuple(text_emb.shape)}"
        )
    ia, ta = _check_attributes(image_attrs), _check_attributes(text_attrs)
    if len(ia) != len(image_emb) or len(ta) != len(text_emb):
        raise ValueError("need one attribute row per embedding")
    sim = F.normalize(image_emb.float(), dim=1) @ F.normalize(text_emb.float(), dim=1).T  # (N, M)
    same = (ia[:, None, :] == ta[None, :, :]).all(-1)  # (N, M) same attributes
    i2t = same[torch.arange(len(ia)), sim.argmax(1)].float()
    t2i = same[sim.argmax(0), torch.arange(len(ta))].float()
    return {
        "image_to_text": i2t,
        "text_to_image": t2i,
        "chance_image_to_text": float(same.float().mean(1).mean()),
        "chance_text_to_image": float(same.float().mean(0).mean()),
    }


@torch.no_grad()
def clip_score(
    model: TextImageCLIP, images: torch.Tensor, prompts: list[str] | str
) -> torch.Tensor:
    """Cosine similarity of each image's and its prompt's embedding (Hessel et al.'s CLIPScore
    without the ×2.5 and the clipping at 0), ``(N,)``; one prompt is used for every image."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if len(prompts) not in (1, len(images)):
        raise ValueError(f"need one prompt or one per image, got {len(prompts)} for {len(images)}")
    was = model.training
    model.eval()
    img = model.encode_image(images)
    txt = model.encode_prompts(prompts)
    model.train(was)
    return (img * txt).sum(-1).cpu()  # (N,), broadcasting one prompt
