"""The catalogue of official pretrained assets: data, one typed entry per file.

URLs come from each project's README and download code (sources noted per group). Where a source
publishes no checksum - none of NVIDIA's, the Google Drive assets' or TreB1eN's does - the entry has
``sha256=None`` and the file's SHA-256 is recorded on first download and verified afterwards (trust on
first use, shown as such by ``styleclip models list``). Files inside a git repository are verified
by their git blob id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("generator", "encoder", "identity", "perceptual", "landmarks", "directions", "mapper", "parser")

NVIDIA_NC = "NVIDIA Source Code License-NC (non-commercial: research or evaluation only)"
NVIDIA_NC_DERIVED = "MIT code; embeds an NVIDIA generator, so NVIDIA's non-commercial licence applies"


@dataclass(frozen=True)
class Asset:
    """One downloadable file and what it is for."""

    name: str  # 'family:model', e.g. 'stylegan2-ada:afhqdog'
    kind: str  # one of KINDS
    domain: str  # 'face', 'dog', 'cat', 'wild', 'art', 'car', ...
    filename: str  # name in the cache
    urls: tuple[str, ...]  # sources in preference order
    licence: str
    file_format: str  # how to read it: 'stylegan2-ada-pytorch', 'stylegan2-tensorflow', 'rosinality', ...
    resolution: int | None = None  # output (generators) or input (encoders) side length
    sha256: str | None = None  # published SHA-256 or its published prefix; None = trust on first use
    git_blob: str | None = None  # git blob id for files served from a repository
    size: int | None = None  # bytes, where known
    aliases: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)  # e.g. {'identity_loss': True}
    description: str = ""


def _drive(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


_ADA_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained"
_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files"
_SG2_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks"
_ADA_TF_CDN = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada/pretrained"
_STYLECLIP_RAW = "https://raw.githubusercontent.com/orpatashnik/StyleCLIP/f87a47f7fc39e19a1f6c88293875692b303bf168"

# The inversions known for a generator, most faithful first: styleclip.invert(method="auto") picks among them.
_FACE_INVERSIONS = {"hyperstyle": "hyperstyle:ffhq", "restyle": "restyle-e4e:ffhq", "e4e": "e4e:ffhq"}
_FACE = {"identity_loss": True, "encoder": "e4e:ffhq", "inversions": _FACE_INVERSIONS}

# -- generators: NVIDIA stylegan2-ada-pytorch (README "Data repository"; NGC names from the stylegan3 README)
_ADA = [
    ("ffhq", "face", 1024, "stylegan2-ffhq-1024x1024.pkl", _FACE, "FFHQ faces, trained with the original StyleGAN2"),
    ("metfaces", "art", 1024, "stylegan2-metfaces-1024x1024.pkl", {}, "MetFaces portraits, ADA transfer from FFHQ"),
    ("afhqcat", "cat", 512, "stylegan2-afhqcat-512x512.pkl", {}, "AFHQ cats, ADA"),
    ("afhqdog", "dog", 512, "stylegan2-afhqdog-512x512.pkl", {}, "AFHQ dogs, ADA"),
    (
        "afhqwild",
        "wild",
        512,
        "stylegan2-afhqwild-512x512.pkl",
        {
            "encoder": "restyle-e4e:afhqwild",
            "inversions": {"hyperstyle": "hyperstyle:afhq-wild", "restyle": "restyle-e4e:afhqwild"},
        },
        "AFHQ wild animals, ADA",
    ),
    ("brecahad", "histology", 512, "stylegan2-brecahad-512x512.pkl", {}, "BreCaHAD breast-cancer histology, ADA"),
    ("cifar10", "objects", 32, "stylegan2-cifar10-32x32.pkl", {"conditional": 10}, "CIFAR-10, class-conditional"),
]

ASSETS: list[Asset] = [
    Asset(
        name=f"stylegan2-ada:{key}",
        kind="generator",
        domain=domain,
        filename=f"stylegan2-ada-{key}.pkl",
        urls=(f"{_ADA_CDN}/{key}.pkl", f"{_NGC}/{ngc}"),
        licence=NVIDIA_NC,
        file_format="stylegan2-ada-pytorch",
        resolution=res,
        aliases=(key,),
        defaults=dict(defaults),
        description=desc,
    )
    for key, domain, res, ngc, defaults, desc in _ADA
]

# -- generators: original TensorFlow releases (NVlabs/stylegan2 README; stylegan2-ada README)
ASSETS += [
    Asset(
        name=f"stylegan2-tf:{key}",
        kind="generator",
        domain=domain,
        filename=f"stylegan2-{key}-config-f.pkl",
        urls=(f"{_SG2_CDN}/stylegan2-{key}-config-f.pkl",),
        licence=NVIDIA_NC,
        file_format="stylegan2-tensorflow",
        resolution=res,
        defaults=dict(_FACE)
        if key == "ffhq"
        else {"inversions": {"hyperstyle": "hyperstyle:cars"}}
        if key == "car"
        else {},
        description=f"original TensorFlow StyleGAN2 config-f ({desc}); StyleCLIP's ffhq directions use ffhq",
    )
    for key, domain, res, desc in [
        ("ffhq", "face", 1024, "FFHQ"),
        ("car", "car", 512, "LSUN Car, 512x384 content"),
        ("cat", "cat", 256, "LSUN Cat"),
        ("church", "church", 256, "LSUN Church"),
        ("horse", "horse", 256, "LSUN Horse"),
    ]
]
ASSETS += [
    Asset(
        name=f"stylegan2-ada-tf:{key}",
        kind="generator",
        domain=domain,
        filename=f"stylegan2-ada-tf-{key}.pkl",
        urls=(f"{_ADA_TF_CDN}/{key}.pkl",),
        licence=NVIDIA_NC,
        file_format="stylegan2-tensorflow",
        resolution=res,
        description=f"TensorFlow StyleGAN2-ADA {key}: the network StyleCLIP's {key} directions were computed on",
    )
    for key, domain, res in [("afhqdog", "dog", 512), ("afhqcat", "cat", 512), ("afhqwild", "wild", 512)]
]

# -- generators: NVIDIA StyleGAN3 (stylegan3 README, "StyleGAN3 pre-trained models" on NGC). No encoder is paired:
# e4e / ReStyle were trained for StyleGAN2's W space, so photos are inverted by projection.
_SG3_NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files"
_SG3 = [
    ("ffhq", "face", 1024, "FFHQ faces (aligned)"),
    ("ffhqu", "face", 1024, "FFHQ-U faces (unaligned)"),
    ("ffhqu-256", "face", 256, "FFHQ-U faces (unaligned), 256 px"),
    ("metfaces", "art", 1024, "MetFaces portraits (aligned), transfer from FFHQ"),
    ("metfacesu", "art", 1024, "MetFaces-U portraits (unaligned), transfer from FFHQ-U"),
    ("afhqv2", "animal", 512, "AFHQv2 cats, dogs and wild animals"),
]
ASSETS += [
    Asset(
        name=f"stylegan3-{cfg}:{key}",
        kind="generator",
        domain=domain,
        filename=f"stylegan3-{cfg}-{key.split('-')[0]}-{res}x{res}.pkl",
        urls=(f"{_SG3_NGC}/stylegan3-{cfg}-{key.split('-')[0]}-{res}x{res}.pkl",),
        licence=NVIDIA_NC,
        file_format="stylegan3-pytorch",
        resolution=res,
        description=f"StyleGAN3-{cfg.upper()} ({'translation' if cfg == 't' else 'translation and rotation'} "
        f"equivariant), {desc}",
    )
    for cfg in ("t", "r")
    for key, domain, res, desc in _SG3
]

# -- the rosinality-format FFHQ generator StyleCLIP, e4e and ReStyle use (StyleCLIP utils.py, e4e README)
ASSETS.append(
    Asset(
        name="rosinality:ffhq",
        kind="generator",
        domain="face",
        filename="stylegan2-ffhq-config-f.pt",
        urls=(_drive("1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"),),
        licence=NVIDIA_NC_DERIVED,
        file_format="rosinality",
        resolution=1024,
        aliases=("ffhq-config-f",),
        defaults=dict(_FACE),
        description="FFHQ config-f converted by rosinality's script (StyleCLIP / e4e / ReStyle)",
    )
)

# -- StyleGAN-NADA's published FFHQ models: rosinality ``{'g_ema'}`` files (config-f 1024, channel multiplier 2) on
# Hugging Face. Names come from where the files are used: NADA's README (pixar, ukiyoe, edvard_munch, botero; its
# generate_videos.py), its cog_predict.py default style list (joker, anime, modigliani), and the StyleGANEX demo's
# "Domain Transfer" list, which downloads them from this repository (disney_princess, vintage_comics). sketch and
# van_gogh, shown in NADA's paper, are left out: no code or model card names such a file in the repository, and the
# maintainer said some paper models were never released (NADA issue #44). The training prompts of these files are
# not published: "target" names the style, not the exact prompt. Their mapping network is the base's, frozen.
_NADA_HF = "https://huggingface.co/rinong/stylegan-nada-models/resolve/main"
NADA_BASE = "rosinality:ffhq"
_NADA = {
    "pixar": "Pixar character",
    "ukiyoe": "Ukiyo-e painting",
    "edvard_munch": "Edvard Munch painting",
    "botero": "Botero painting",
    "joker": "The Joker",
    "anime": "anime character",
    "modigliani": "Modigliani painting",
    "disney_princess": "Disney princess",
    "vintage_comics": "vintage comics",
}
ASSETS += [
    Asset(
        name=f"nada:{key}",
        kind="generator",
        domain="face",
        filename=f"stylegan-nada-{key}.pt",
        urls=(f"{_NADA_HF}/{key}.pt",),
        licence=NVIDIA_NC_DERIVED,
        file_format="rosinality",
        resolution=1024,
        defaults={
            "base": NADA_BASE,
            "adapted": {"method": "stylegan-nada", "source": "photo", "target": target, "published": True},
        },
        description=f"StyleGAN-NADA FFHQ adapted to '{target}' (draw the base's codes with it: --adapted nada:{key})",
    )
    for key, target in _NADA.items()
]

# -- encoders (e4e README; ReStyle README)
ASSETS += [
    Asset(
        name="e4e:ffhq",
        kind="encoder",
        domain="face",
        filename="e4e_ffhq_encode.pt",
        urls=(_drive("1cUv_reLE6k3604or78EranS7XzuVMWeO"), _drive("1O8OLrVNOItOJoNGMyQ8G8YRTeTYEfs0P")),
        licence=NVIDIA_NC_DERIVED,
        file_format="e4e",
        resolution=1024,
        defaults={"generator": "rosinality:ffhq"},
        description="encoder4editing FFHQ inversion (contains its decoder)",
    ),
    Asset(
        name="restyle-e4e:ffhq",
        kind="encoder",
        domain="face",
        filename="restyle_e4e_ffhq_encode.pt",
        urls=(_drive("1e2oXVeBPXMQoUoC_4TNwAWpOPpSEhE_e"),),
        licence=NVIDIA_NC_DERIVED,
        file_format="restyle-e4e",
        resolution=1024,
        defaults={"generator": "rosinality:ffhq", "steps": 5},
        description="ReStyle over e4e, FFHQ",
    ),
    Asset(
        name="restyle-e4e:afhqwild",
        kind="encoder",
        domain="wild",
        filename="restyle_e4e_afhq_wild_encode.pt",
        urls=(_drive("1HQlUPKirShHyL3kGnwVRjhfcb-j9s4V3"),),
        licence=NVIDIA_NC_DERIVED,
        file_format="restyle-e4e",
        resolution=512,
        defaults={"generator": "stylegan2-ada:afhqwild", "steps": 5},
        description="ReStyle over e4e, AFHQ Wild",
    ),
]

# -- HyperStyle (its README's pretrained-model table): the hyper-network checkpoints, each with the W encoder that gives
# its starting codes and the generator it was trained with (the rosinality conversions of the same networks)
_HYPERSTYLE = [
    ("ffhq", "face", 1024, "1C3dEIIH1y8w1-zQMCyx7rDF0ndswSXh4", "hyperstyle_ffhq.pt", "1M-hsL3W_cJKs77xM1mwq2e9-J0_m7rHP",
     "faces_w_encoder.pt", "rosinality:ffhq", "FFHQ faces"),
    ("cars", "car", 512, "1WZ7iNv5ENmxXFn6dzPeue1jQGNp6Nr9d", "hyperstyle_cars.pt", "1GZke8pfXMSZM9mfT-AbP1Csyddf5fas7",
     "cars_w_encoder.pt", "stylegan2-tf:car", "LSUN cars (512 x 384 content)"),
    ("afhq-wild", "wild", 512, "1OMAKYRp3T6wzGr0s3887rQK-5XHlJ2gp", "hyperstyle_afhq_wild.pt",
     "1MhEHGgkTpnTanIwuHYv46i6MJeet2Nlr", "afhq_wild_w_encoder.pt", "stylegan2-ada:afhqwild", "AFHQ wild animals"),
]  # fmt: skip
for key, domain, res, model_id, model_file, w_id, w_file, base, what in _HYPERSTYLE:
    ASSETS += [
        Asset(
            name=f"hyperstyle:{key}",
            kind="encoder",
            domain=domain,
            filename=model_file,
            urls=(_drive(model_id),),
            licence=NVIDIA_NC_DERIVED,
            file_format="hyperstyle",
            resolution=res,
            defaults={"generator": base, "w_encoder": f"hyperstyle-w:{key}", "steps": 5},
            description=f"HyperStyle, {what}: per-photo offsets of the generator's weights (contains its decoder)",
        ),
        Asset(
            name=f"hyperstyle-w:{key}",
            kind="encoder",
            domain=domain,
            filename=w_file,
            urls=(_drive(w_id),),
            licence=NVIDIA_NC_DERIVED,
            file_format="w-encoder",
            resolution=res,
            defaults={"generator": base},
            description=f"HyperStyle's W encoder, {what}: the codes its passes start from",
        ),
    ]

# -- identity: ArcFace IR-SE50 as e4e / pSp / ReStyle / StyleCLIP use it (taken from TreB1eN)
ASSETS.append(
    Asset(
        name="arcface:ir-se50",
        kind="identity",
        domain="face",
        filename="model_ir_se50.pth",
        urls=(_drive("1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn"),),
        licence="MIT (TreB1eN/InsightFace_Pytorch); trained on MS1M - check the dataset's terms",
        file_format="arcface-ir-se50",
        resolution=112,
        aliases=("arcface", "ir-se50"),
        description="face-identity network for the identity loss",
    )
)

# -- face parsing: BiSeNet of zllrunning/face-parsing.PyTorch (its README's link), STIT's segmentation model
ASSETS.append(
    Asset(
        name="face-parsing:bisenet",
        kind="parser",
        domain="face",
        filename="79999_iter.pth",
        urls=(_drive("154JgKpzCPW82qINcVieuPH3fZ2e0P812"),),
        licence="MIT (zllrunning/face-parsing.PyTorch); trained on CelebAMask-HQ (non-commercial research only)",
        file_format="bisenet-face-parsing",
        resolution=512,
        aliases=("bisenet", "face-parsing"),
        description="BiSeNet face parser (19 CelebAMask-HQ classes): the video stitching mask",
    )
)

# -- perceptual: LPIPS v0.1 (richzhang/PerceptualSimilarity) on torchvision's ImageNet backbones
_LPIPS_RAW = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/c33f89e9f46522a584cf41d8880eb0afa982708b"
ASSETS += [
    Asset(
        name=f"lpips:{net}",
        kind="perceptual",
        domain="any",
        filename=f"lpips-v0.1-{net}.pth",
        urls=(f"{_LPIPS_RAW}/lpips/weights/v0.1/{net}.pth",),
        licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
        file_format="lpips-lin",
        git_blob=blob,
        size=size,
        description=f"LPIPS v0.1 calibration layers for {backbone} (the lpips package ships the same file)",
    )
    for net, backbone, blob, size in (
        ("vgg", "VGG16", "47e943cfacabf7040b4af8cf4084ab91177f1b88", 7289),
        ("alex", "AlexNet", "1df9dfe62abb1fc89cc7f82b4e5fe886c979708e", 6009),
    )
]
ASSETS += [
    Asset(
        name=f"torchvision:{arch}",
        kind="perceptual",
        domain="any",
        filename=filename,
        urls=(f"https://download.pytorch.org/models/{filename}",),
        licence="BSD-3-Clause (torchvision); trained on ImageNet - check the dataset's terms",
        file_format="torchvision",
        resolution=224,
        sha256=filename.rsplit("-", 1)[1].split(".")[0],  # torchvision publishes the hash prefix in the name
        description=f"ImageNet {arch} backbone for LPIPS",
    )
    for arch, filename in (("vgg16", "vgg16-397923af.pth"), ("alexnet", "alexnet-owt-7be5be79.pth"))
]

# -- StyleCLIP latent mappers (StyleCLIP utils.py google_drive_paths)
_MAPPERS = {
    "afro": "1i5vAqo4z0I-Yon3FNft_YZOq7ClWayQJ",
    "angry": "1g82HEH0jFDrcbCtn3M22gesWKfzWV_ma",
    "beyonce": "1KJTc-h02LXs4zqCyo7pzCp0iWeO6T9fz",
    "bobcut": "1IvyqjZzKS-vNdq_OhwapAcwrxgLAY8UF",
    "bowlcut": "1xwdxI2YCewSt05dEHgkpmmzoauPjEnnZ",
    "curly_hair": "1xZ7fFB12Ci6rUbUfaHPpo44xUFzpWQ6M",
    "depp": "1FPiJkvFPG_y-bFanxLLP91wUKuy-l3IV",
    "hilary_clinton": "1X7U2zj2lt0KFifIsTfOOzVZXqYyCWVll",
    "mohawk": "1oMMPc8iQZ7dhyWavZ7VNWLwzf9aX4C09",
    "purple_hair": "14H0CGXWxePrrKIYmZnDD2Ccs65EEww75",
    "surprised": "1F-mPrhO-UeWrV1QYMZck63R43aLtPChI",
    "taylor_swift": "10jHuHsKKJxuf3N0vgQbX_SMEQgFHDrZa",
    "trump": "14v8D0uzy4tOyfBU3ca9T0AzTt3v-dNyh",
    "zuckerberg": "1NjDcMUL8G-pO3i_9N6EPpQNXeMc3Ar1r",
}
ASSETS += [
    Asset(
        name=f"styleclip-mapper:{key}",
        kind="mapper",
        domain="face",
        filename=f"styleclip_mapper_{key}.pt",
        urls=(_drive(file_id),),
        licence=NVIDIA_NC_DERIVED,
        file_format="styleclip-mapper",
        resolution=1024,
        defaults={"generator": "rosinality:ffhq"},
        description=f"StyleCLIP latent mapper '{key.replace('_', ' ')}'",
    )
    for key, file_id in _MAPPERS.items()
]

# -- StyleCLIP's precomputed channel-relevance matrices, from the repository at a pinned commit
ASSETS += [
    Asset(
        name=f"styleclip-fs3:{key}",
        kind="directions",
        domain=domain,
        filename=f"styleclip_fs3_{key}.npy",
        urls=(f"{_STYLECLIP_RAW}/global_directions/npy/{key}/fs3.npy",),
        licence="MIT (StyleCLIP); derived from CLIP and an NVIDIA generator (non-commercial)",
        file_format="styleclip-fs3",
        git_blob=blob,
        defaults={"generator": generator, "clip": "ViT-B-32:openai"},
        description=f"global-direction relevance matrix for {generator}",
    )
    for key, domain, blob, generator in [
        ("ffhq", "face", "ef9dc0a49a4e2ffe1c81b8632baab6e3a4466726", "stylegan2-tf:ffhq"),
        ("afhqdog", "dog", "327f0869c7bf91e24bfc6810e11791e0b9a6579f", "stylegan2-ada-tf:afhqdog"),
        ("afhqcat", "cat", "1cdd7057428fb8b46dd1badb0f277594a9615857", "stylegan2-ada-tf:afhqcat"),
    ]
]
