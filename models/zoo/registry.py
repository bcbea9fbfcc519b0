"""The zoo: named, documented architecture configurations.

Each entry says which backbone, which attention where, which neck and head. Map names follow
the module paths, e.g. ``backbone.stage3.block1.attn.spatial``; ``exposed_maps`` lists them.
"""

from typing import Dict, List, Optional, Tuple

from models.attention.factory import AttnLayer
from models.zoo.blocks import AugmentedSpec
from models.zoo.specs import (
    ArchitectureSpec,
    NeckSpec,
    ResNetSpec,
    StageSpec,
    Task,
    TopFormerSpec,
)

WIDTHS = (32, 64, 128, 256)
DEMO_WIDTHS = (16, 32, 64, 64)


def resnet(
    attn_layer: AttnLayer = None,
    widths: Tuple[int, ...] = WIDTHS,
    output_stride: int = 32,
    augmented_from: Optional[int] = None,
    blocks: Optional[int] = None,
) -> ResNetSpec:
    """One block per stage (two in stage 3), or ``blocks`` in every stage; ``attn_layer`` in
    every block; stages from index ``augmented_from`` on use attention-augmented convolutions."""
    stages = tuple(
        StageSpec(
            channels=width,
            blocks=blocks if blocks is not None else 2 if index == 2 else 1,
            attn_layer=attn_layer,
            augmented=AugmentedSpec()
            if augmented_from is not None and index >= augmented_from
            else None,
        )
        for index, width in enumerate(widths)
    )
    return ResNetSpec(stages=stages, stem_channels=widths[0], output_stride=output_stride)


SPECS: Tuple[ArchitectureSpec, ...] = (
    ArchitectureSpec(
        name="se_resnet_sagan",
        task="classification",
        description="ResNet with SE blocks and a SAGAN self-attention stage (the benchmark "
        "classifier of bench/).",
        backbone=resnet("se"),
        neck=NeckSpec("self_attention"),
        head="linear",
    ),
    ArchitectureSpec(
        name="se_resnet18_sagan",
        task="classification",
        description="se_resnet_sagan with ResNet-18's depth, two blocks in every stage: issue "
        "12's heavier benchmark model, 0.98 GFLOP and 2.91 M parameters at 224 px and 10 "
        "classes (python -m bench --target se_resnet18_sagan).",
        backbone=resnet("se", blocks=2),
        neck=NeckSpec("self_attention"),
        head="linear",
    ),
    ArchitectureSpec(
        name="cbam_resnet_nonlocal",
        task="classification",
        description="ResNet with CBAM blocks and a global Non-local block.",
        backbone=resnet("cbam"),
        neck=NeckSpec("nonlocal"),
        head="linear",
    ),
    ArchitectureSpec(
        name="aa_resnet",
        task="classification",
        description="ResNet whose stages 3 and 4 use attention-augmented convolutions with "
        "relative position logits (fixed input size).",
        backbone=resnet(augmented_from=2),
        head="linear",
    ),
    ArchitectureSpec(
        name="se_resnet_transformer",
        task="classification",
        description="ResNet with SE blocks and a 2-layer DETR transformer encoder stage.",
        backbone=resnet("se"),
        neck=NeckSpec("transformer"),
        head="linear",
    ),
    ArchitectureSpec(
        name="detr_resnet",
        task="classification",
        description="ResNet features read by a DETR encoder-decoder with learned queries.",
        backbone=resnet(),
        head="detr",
    ),
    ArchitectureSpec(
        name="topformer_lite",
        task="classification",
        description="TopFormer-style light model: a strided token pyramid to stride 16, then "
        "TopFormer attention blocks.",
        backbone=TopFormerSpec(),
        head="linear",
    ),
    ArchitectureSpec(
        name="stn_cbam_resnet",
        task="classification",
        description="A spatial transformer front end before a CBAM ResNet.",
        backbone=resnet("cbam"),
        stn=True,
        head="linear",
    ),
    ArchitectureSpec(
        name="danet_resnet",
        task="segmentation",
        description="Dilated ResNet (output stride 8) with the DANet dual attention head.",
        backbone=resnet(output_stride=8),
        head="danet",
    ),
    ArchitectureSpec(
        name="ccnet_resnet",
        task="segmentation",
        description="Dilated ResNet (output stride 8) with CCNet's recurrent criss-cross head "
        "(R=2).",
        backbone=resnet(output_stride=8),
        head="ccnet",
    ),
    ArchitectureSpec(
        name="nonlocal_resnet",
        task="segmentation",
        description="Dilated ResNet (output stride 8) with a Non-local context head.",
        backbone=resnet(output_stride=8),
        head="nonlocal",
    ),
    ArchitectureSpec(
        name="shapes_cbam_classifier",
        task="classification",
        description="Demo classifier for the generated shapes: a narrow CBAM ResNet with a "
        "SAGAN self-attention stage, 64x64 input.",
        backbone=resnet("cbam", widths=DEMO_WIDTHS),
        neck=NeckSpec("self_attention"),
        head="linear",
        input_size=(64, 64),
        tags=("demo",),
    ),
    ArchitectureSpec(
        name="shapes_danet_segmenter",
        task="segmentation",
        description="Demo segmenter for the generated shapes: a narrow dilated SE ResNet with "
        "the DANet head, 64x64 input; output stride 4 (mIoU 0.87 vs 0.78 at stride 8 on "
        "small shapes).",
        backbone=resnet("se", widths=DEMO_WIDTHS, output_stride=4),
        head="danet",
        input_size=(64, 64),
        tags=("demo",),
    ),
)

ARCHITECTURES: Dict[str, ArchitectureSpec] = {spec.name: spec for spec in SPECS}


def get_architecture(name: str) -> ArchitectureSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None


def architecture_names(task: Optional[Task] = None) -> List[str]:
    return sorted(name for name, spec in ARCHITECTURES.items() if task in (None, spec.task))
