"""GoogLeNet's Inception blocks: the benchmark shapes, named after the real model.

Szegedy et al., "Going deeper with convolutions" (CVPR 2015), Table 1: input size and the filter
counts of each branch. Every block's input is the previous block's concatenated output (after the
3×3/2 max-pools before 4a and 5a), which the numbers below satisfy.
"""

from __future__ import annotations

from typing import NamedTuple


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
    def c_out(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj


#: Table 1, in network order.
BLOCKS = (
    Block("inception_3a", 28, 192, 64, 96, 128, 16, 32, 32),
    Block("inception_3b", 28, 256, 128, 128, 192, 32, 96, 64),
    Block("inception_4a", 14, 480, 192, 96, 208, 16, 48, 64),
    Block("inception_4b", 14, 512, 160, 112, 224, 24, 64, 64),
    Block("inception_4c", 14, 512, 128, 128, 256, 24, 64, 64),
    Block("inception_4d", 14, 512, 112, 144, 288, 32, 64, 64),
    Block("inception_4e", 14, 528, 256, 160, 320, 32, 128, 128),
    Block("inception_5a", 7, 832, 256, 160, 320, 32, 128, 128),
    Block("inception_5b", 7, 832, 384, 192, 384, 48, 128, 128),
)
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
        for branch, c_out in (("1x1", b.c1x1), ("3x3_reduce", b.c3x3_reduce),
                              ("5x5_reduce", b.c5x5_reduce), ("pool_proj", b.pool_proj)):
            key = (b.size, b.c_in, c_out)
            if key not in out:
                out[key] = Pointwise(f"{b.name.removeprefix('inception_')}_{branch}", *key)
    return tuple(out.values())
