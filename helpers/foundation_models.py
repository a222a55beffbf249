"""The chapter's pathology foundation models as a small registry.

Each entry records the year, architecture, training data and, where the weights are published,
how to load them. Published weights sit behind a gated model-hub page (accept the terms, then log
in with a token); nothing here downloads by default. :func:`load` tries only when asked and, when
the network, the access rights or the package are missing, fails with a message that says why.

Examples
--------
>>> from helpers import foundation_models as fm
>>> fm.REGISTRY["UNI"].architecture
'ViT-L/16 (DINOv2), 1024-d'
>>> sorted(fm.REGISTRY)[:3]
['CONCH', 'CTransPath', 'Campanella']
"""

from __future__ import annotations

import ast
import importlib
import logging
import socket
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundationModel:
    """One pathology foundation model.

    Attributes
    ----------
    name, year, reference : str, int, str
    architecture : str
    training_data : str
    hub_id : str or None
        ``timm`` model name on the Hugging Face hub (``hf_hub:…``), when the weights load that way.
    loader : str
        How to get the network: ``"timm"``, ``"package"`` (the authors' own package) or
        ``"unreleased"``.
    access : str
        Licence and access conditions, and what to do.
    timm_kwargs : tuple of (str, str)
        Extra ``timm.create_model`` arguments the model card asks for (as text).
    parameters : str
        Number of parameters, with where the number comes from.
    backbones : tuple of (str, tuple of (str, str))
        The timm architectures (name, extra arguments as text) whose sizes :attr:`parameters`
        quotes; :func:`count_parameters` builds them without weights and counts.
    """

    name: str
    year: int
    reference: str
    architecture: str
    training_data: str
    hub_id: str | None
    loader: str
    access: str
    timm_kwargs: tuple[tuple[str, str], ...] = ()
    parameters: str = ""
    backbones: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()

    def create_kwargs(self) -> dict[str, Any]:
        """:attr:`timm_kwargs` as Python values: literals (``1e-5``, ``True``) are parsed, dotted
        names (``torch.nn.SiLU``) imported.

        Examples
        --------
        >>> REGISTRY["UNI"].create_kwargs()
        {'init_values': 1e-05, 'dynamic_img_size': True}
        """
        return {key: _value(text) for key, text in self.timm_kwargs}

    def how_to_load(self) -> str:
        """One line of code (or a sentence) that loads the weights."""
        if self.loader == "timm" and self.hub_id:
            extra = "".join(f", {k}={v}" for k, v in self.timm_kwargs)
            return f'timm.create_model("{self.hub_id}", pretrained=True{extra})'
        return self.access


def _value(text: str) -> Any:
    """A Python literal (``"1e-5"``, ``"True"``) or the object a dotted name points to."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        module, _, attr = text.rpartition(".")
        if not module:
            raise ValueError(f"{text!r} is neither a literal nor a dotted name") from None
        return getattr(importlib.import_module(module), attr)


REGISTRY: dict[str, FoundationModel] = {
    m.name: m
    for m in (
        FoundationModel(
            "CTransPath",
            2022,
            "Wang, X. et al. Transformer-based unsupervised contrastive learning for histopathological "
            "image classification. Medical Image Analysis 81, 102559 (2022)",
            "Swin-T with a convolutional stem (hybrid CNN–transformer), 768-d",
            "≈15 M unlabelled patches from ≈32 k WSIs (TCGA, PAIP); semantically-relevant contrastive learning",
            None,
            "package",
            "weights from the authors' GitHub (Xiyue-Wang/TransPath); needs their patched timm 0.5.4",
            parameters="≈ 27.5 M: timm's count of the Swin-T backbone (swin_tiny_patch4_window7_224); "
            "CTransPath's convolutional stem changes it slightly",
            backbones=(("swin_tiny_patch4_window7_224", ()),),
        ),
        FoundationModel(
            "UNI",
            2024,
            "Chen, R. J. et al. Towards a general-purpose foundation model for computational pathology. "
            "Nature Medicine 30, 850–862 (2024)",
            "ViT-L/16 (DINOv2), 1024-d",
            "Mass-100K: >100 M tiles from >100 k H&E WSIs, 20 major tissue types",
            "hf_hub:MahmoodLab/UNI",
            "timm",
            "gated on the Hugging Face hub (MahmoodLab/UNI), CC-BY-NC-ND 4.0, academic non-commercial use",
            (("init_values", "1e-5"), ("dynamic_img_size", "True")),
            parameters="303 M: timm's count of vit_large_patch16_224 with the model card's "
            "arguments (ViT-L/16)",
            backbones=(("vit_large_patch16_224", (("init_values", "1e-5"),)),),
        ),
        FoundationModel(
            "CONCH",
            2024,
            "Lu, M. Y. et al. A visual-language foundation model for computational pathology. "
            "Nature Medicine 30, 863–874 (2024)",
            "vision–language (CoCa-style): ViT-B/16 image encoder + text encoder",
            "1.17 M histopathology image–caption pairs",
            "hf_hub:MahmoodLab/conch",
            "package",
            "gated on the Hugging Face hub (MahmoodLab/CONCH), CC-BY-NC-ND 4.0; load with the authors' "
            "`conch` package: create_model_from_pretrained('conch_ViT-B-16', 'hf_hub:MahmoodLab/conch')",
            parameters="85.8 M for a ViT-B/16 image encoder (timm's count of vit_base_patch16_224); "
            "the text encoder and the multimodal decoder add more (not counted here)",
            backbones=(("vit_base_patch16_224", ()),),
        ),
        FoundationModel(
            "Virchow",
            2023,
            "Vorontsov, E. et al. A foundation model for clinical-grade computational pathology and "
            "rare cancers detection. Nature Medicine 30, 2924–2935 (2024); preprint: Virchow: a "
            "million-slide digital pathology foundation model, arXiv:2309.07778 (2023)",
            "ViT-H/14 (DINOv2), 632 M parameters, SwiGLU MLP",
            "≈1.5 M H&E WSIs (Memorial Sloan Kettering)",
            "hf-hub:paige-ai/Virchow",
            "timm",
            "gated on the Hugging Face hub (paige-ai/Virchow), Apache 2.0 with additional terms",
            (("mlp_layer", "timm.layers.SwiGLUPacked"), ("act_layer", "torch.nn.SiLU")),
            parameters="632 M (paper); timm's count of vit_huge_patch14_224 with the model card's "
            "SwiGLU MLP (mlp_ratio 5.3375): 631 M",
            backbones=(
                (
                    "vit_huge_patch14_224",
                    (
                        ("init_values", "1e-5"),
                        ("mlp_ratio", "5.3375"),
                        ("mlp_layer", "timm.layers.SwiGLUPacked"),
                        ("act_layer", "torch.nn.SiLU"),
                    ),
                ),
            ),
        ),
        FoundationModel(
            "RudolfV",
            2024,
            "Dippel, J. et al. RudolfV: a foundation model by pathologists for pathologists. "
            "arXiv:2401.04079 (2024)",
            "ViT-L/14 (DINOv2) with pathologist-guided data curation and stain augmentation",
            "first version (arXiv v1): 103 k slides, 750 M patches; later versions: ≈ 134 k slides "
            "from over 15 laboratories, 58 tissue types, 129 stainings (H&E, IHC, special stains)",
            None,
            "unreleased",
            "weights not publicly released; no loader",
            parameters="303 M: timm's count of a ViT-L/14 (vit_large_patch14_dinov2)",
            backbones=(("vit_large_patch14_dinov2", (("img_size", "224"),)),),
        ),
        FoundationModel(
            "Campanella",
            2023,
            "Campanella, G. et al. Computational pathology at health system scale — self-supervised "
            "foundation models from three billion images. arXiv:2310.07033 (2023)",
            "ViT-S and ViT-L trained with DINO and MAE",
            "≈3 billion tiles from ≈423 k slides (Mount Sinai Health System)",
            None,
            "unreleased",
            "weights not publicly released; no loader",
            parameters="21.7 M (ViT-S) and 303 M (ViT-L): timm's counts of vit_small_patch16_224 "
            "and vit_large_patch16_224 (the patch size changes them little)",
            backbones=(
                ("vit_small_patch16_224", ()),
                ("vit_large_patch16_224", ()),
            ),
        ),
        FoundationModel(
            "Prov-GigaPath",
            2024,
            "Xu, H. et al. A whole-slide foundation model for digital pathology from real-world data. "
            "Nature 630, 181–188 (2024)",
            "tile encoder ViT-g/14 (DINOv2), 1536-d; slide encoder LongNet (12 layers, 768-d, dilated attention)",
            "1.3 B 256×256 tiles from 171,189 slides (Providence health network)",
            "hf_hub:prov-gigapath/prov-gigapath",
            "timm",
            "gated on the Hugging Face hub (prov-gigapath/prov-gigapath); accept the terms and set HF_TOKEN; "
            "the slide encoder needs the authors' `gigapath` package",
            parameters="tile encoder 1.13 B: timm's count of vit_giant_patch14_dinov2 (ViT-g/14); "
            "slide encoder ≈ 86 M (analytic: 12 transformer layers of width 768, 7.1 M each, plus "
            "the 1536 → 768 input projection)",
            backbones=(("vit_giant_patch14_dinov2", (("img_size", "224"),)),),
        ),
    )
}


def table() -> list[dict[str, str]]:
    """The registry as rows (for a pandas DataFrame or a printed table)."""
    return [
        {
            "model": m.name,
            "year": str(m.year),
            "architecture": m.architecture,
            "parameters": m.parameters,
            "training data": m.training_data,
            "how to load": m.how_to_load(),
        }
        for m in REGISTRY.values()
    ]


def count_parameters(name: str) -> dict[str, int]:
    """Parameters of each timm backbone :attr:`FoundationModel.parameters` quotes, counted on
    PyTorch's ``meta`` device: the architecture is built, no weight is allocated or downloaded.

    Examples
    --------
    >>> count_parameters("UNI")
    {'vit_large_patch16_224': 303350784}
    """
    import timm
    import torch

    if name not in REGISTRY:
        raise KeyError(f"unknown foundation model {name!r}; known: {', '.join(REGISTRY)}")
    counts = {}
    for arch, kwargs in REGISTRY[name].backbones:
        with torch.device("meta"):
            net = timm.create_model(
                arch, pretrained=False, num_classes=0, **{k: _value(v) for k, v in kwargs}
            )
        counts[arch] = sum(p.numel() for p in net.parameters())
    return counts


def hub_reachable(host: str = "huggingface.co", *, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load(name: str, *, allow_network: bool = False):
    """Create the pretrained network of ``name`` with timm, when that is possible.

    Parameters
    ----------
    name : str
        A key of :data:`REGISTRY`.
    allow_network : bool
        Must be ``True`` to try a download (default ``False``: the kit works offline).

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    KeyError
        Unknown name (the message lists the known ones).
    RuntimeError
        When the model cannot be loaded here: weights unreleased, a separate package needed,
        network not allowed or not reachable, or access to the gated page not granted. The
        message says which, and what to do.
    """
    if name not in REGISTRY:
        raise KeyError(f"unknown foundation model {name!r}; known: {', '.join(REGISTRY)}")
    m = REGISTRY[name]
    if m.loader != "timm" or m.hub_id is None:
        raise RuntimeError(f"{name} cannot be loaded with timm: {m.access}")
    if not allow_network:
        raise RuntimeError(
            f"{name} needs a download from the Hugging Face hub and allow_network=False. It is "
            f"{m.access}. With access granted and a token set, call load({name!r}, allow_network=True) "
            f"or run: {m.how_to_load()}"
        )
    if not hub_reachable():
        raise RuntimeError(
            f"{name}: huggingface.co is not reachable from this machine (offline?). {m.access}."
        )
    import timm

    try:
        return timm.create_model(m.hub_id, pretrained=True, **m.create_kwargs())
    except Exception as err:  # gated repos raise several hub error types
        raise RuntimeError(
            f"{name}: loading {m.hub_id} failed ({type(err).__name__}: {err}). It is {m.access}; "
            f"request access on its page and log in (`huggingface-cli login` or HF_TOKEN)."
        ) from err
