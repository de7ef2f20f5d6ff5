"""GoogLeNet's Inception blocks: the benchmark shapes, named after the real model.

Szegedy et al., "Going deeper with convolutions" (CVPR 2015), Table 1. The widths come from the
model's own table, :data:`jaxconv.models.GOOGLENET_INCEPTION`, and the map sizes from
:func:`jaxconv.models.stage_sizes` on a 224×224 input; each block's input is the previous
block's concatenated output (after the 3×3/2 max-pools before 4a and 5a).
"""

from __future__ import annotations

from typing import NamedTuple

from jaxconv.models import GOOGLENET_INCEPTION, stage_sizes

#: Table 1's "convolution 3×3" row: the channels entering inception (3a).
STEM_CHANNELS = 192


class Block(NamedTuple):
    """One Inception block of Table 1 (filters per branch)."""

    name: str
    size: int  # H = W of the input
    c_in: int
    c1x1: int
    c3x3_reduce: int
    c3x3: int
    c5x5_reduce: int
    c5x5: int
    pool_proj: int

    @property
    def widths(self) -> tuple[int, int, int, int, int, int]:
        """The six numbers of the row, as :class:`jaxconv.nn.Inception` takes them."""
        return (self.c1x1, self.c3x3_reduce, self.c3x3, self.c5x5_reduce, self.c5x5, self.pool_proj)

    @property
    def c_out(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj


def _blocks(image_size: int = 224) -> tuple[Block, ...]:
    sizes = stage_sizes(image_size)
    blocks: list[Block] = []
    c_in, size = STEM_CHANNELS, sizes["3a"]
    for name, widths in GOOGLENET_INCEPTION.items():
        size = sizes.get(name, size)
        blocks.append(Block(f"inception_{name}", size, c_in, *widths))
        c_in = blocks[-1].c_out
    return tuple(blocks)


#: Table 1, in network order.
BLOCKS = _blocks()
BY_NAME = {b.name: b for b in BLOCKS}

#: The seed's layer: Inception 4a's 5×5 branch (14×14×480 → 16 → 48 5×5 filters).
SEED = "inception_4a"


class Pointwise(NamedTuple):
    """A 1×1 convolution of GoogLeNet: ``size×size×c_in → c_out``."""

    name: str
    size: int
    c_in: int
    c_out: int


def pointwise_shapes() -> tuple[Pointwise, ...]:
    """Every distinct 1×1 conv of GoogLeNet: conv2's 1×1 reduce (Table 1's "convolution 3×3
    reduce 64" on 56×56×64) and each block's #1×1, #3×3 reduce, #5×5 reduce and pool proj."""
    out = {(56, 64, 64): Pointwise("conv2_reduce", 56, 64, 64)}
    for b in BLOCKS:
        for branch, c_out in (
            ("1x1", b.c1x1),
            ("3x3_reduce", b.c3x3_reduce),
            ("5x5_reduce", b.c5x5_reduce),
            ("pool_proj", b.pool_proj),
        ):
            key = (b.size, b.c_in, c_out)
            if key not in out:
                out[key] = Pointwise(f"{b.name.removeprefix('inception_')}_{branch}", *key)
    return tuple(out.values())
