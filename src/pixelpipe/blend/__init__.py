"""Blending and masks: every module that supports blending can be limited to part of the image.

Per module instance (``ModuleInstance.blend``, a :class:`BlendParams`): a blend colour
space, a blend mode, opacity, reverse, and a mask built from drawn forms, parametric
ranges and/or a raster mask published by an earlier module, refined by guided
feathering, blur, brightness and contrast. See ``modes.py`` for the formulas, ``forms.py``
for the shapes and their coordinates, ``render.py`` for rasterisation and
``pipe_hooks.py`` for how the pipe calls all of it.

Adding a group of Bézier paths (e.g. an AI object mask vectorised to paths) to a module::

    from pixelpipe.blend import MaskGroup, Path, add_drawn_group

    outer = Path.from_cubics([(p0, c1, c2, p1), ...])      # normalised input coordinates
    hole = Path.from_cubics([...])
    group = MaskGroup.of([outer, hole], ops=["union", "difference"], name="ai object group #1")
    add_drawn_group(edit, "exposure", group, opacity=1.0)   # creates/enables the blend params

Coordinates of a point found on the pipe's output (e.g. a rendered export scaled by
``s``) go back to normalised input coordinates with :func:`output_to_normalised`.
"""
from __future__ import annotations

import numpy as np

from ..errors import ParamsError
from .forms import Brush, Circle, Ellipse, Form, Gradient, MaskGroup, Member, Path, PathNode
from .modes import CHANNELS_BY_SPACE, MASK_MODES, MODES, MODES_BY_SPACE, SPACES
from .params import BlendParams, Channel

__all__ = [
    "BlendParams", "Channel", "Form", "Circle", "Ellipse", "Gradient", "Path", "PathNode", "Brush", "MaskGroup",
    "Member", "MODES", "MODES_BY_SPACE", "SPACES", "MASK_MODES", "CHANNELS_BY_SPACE", "blend_of",
    "add_drawn_group", "output_to_normalised", "normalised_to_output",
]


def blend_of(edit, label: str, *, create: bool = True) -> BlendParams:
    """The blend parameters of the instance ``label`` (created, uniform, when absent)."""
    from ..modules import registry
    from ..modules.base import Flags

    inst = edit.get(label)
    cls = registry().get(inst.op)
    if cls is None or not cls.flags & Flags.SUPPORTS_BLENDING:
        raise ParamsError(f"module {inst.op} does not support blending")
    if inst.blend is None:
        if not create:
            raise ParamsError(f"module {label} has no blend settings")
        inst.blend = BlendParams()
    return inst.blend


def add_drawn_group(edit, label: str, group, *, opacity: float = 1.0, op: str = "union",
                    inverted: bool = False) -> BlendParams:
    """Add ``group`` (a :class:`MaskGroup` or a single form, normalised input coordinates)
    to the drawn mask of module instance ``label``; switches drawn masking on."""
    bp = blend_of(edit, label)
    bp.add_group(group, op=op, opacity=opacity, inverted=inverted)
    return bp


def output_to_normalised(pipe, pts, scale: float = 1.0) -> np.ndarray:
    """Points on the pipe's output (pixels of an image rendered at ``scale``; pixel centres
    at +0.5) -> normalised input-image coordinates, back through every distortion."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) / float(scale)
    back = pipe.distort_points(p, backward=True)
    return back / [pipe.image.width, pipe.image.height]


def normalised_to_output(pipe, pts, scale: float = 1.0) -> np.ndarray:
    """Normalised input-image coordinates -> pixels of the pipe's output rendered at ``scale``."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2) * [pipe.image.width, pipe.image.height]
    return pipe.distort_points(p) * float(scale)
