"""The Python API: open an image, edit it, render or export it.

>>> import pixelpipe
>>> photo = pixelpipe.open("IMG.dng")                  # decode + edit (sidecar or defaults)
>>> photo.edit.set_params("exposure", photo.image, exposure=1.0)
>>> rgb = photo.render(width=1024)                    # (H, W, 3) float32, display-encoded
>>> photo.export("IMG.jpg", overwrite=True)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import OutputError, PixelpipeError
from .io.source import SourceImage
from .pipe.history import Edit, order_by_name, sidecar_path
from .pipe.pipeline import Pipe


def load_edit(image: SourceImage, sidecar: str | os.PathLike | None = None, workflow: str | None = None,
              order: str | None = None, chromatic_adaptation: str | None = None) -> Edit:
    """The edit to apply: an explicit sidecar, else ``IMAGE.pixelpipe.json`` beside the
    image, else a new edit for the workflow. A darktable ``IMAGE.xmp`` beside the image
    contributes its module order to a new edit (it is only read). ``chromatic_adaptation``
    ("modern" or "legacy", None: the workflow's default) shapes a new edit only (see
    :meth:`Edit.default_for`); a sidecar's edit is kept as it is."""
    if chromatic_adaptation is not None:
        from .pipe.history import chromatic_adaptation_for

        chromatic_adaptation_for(workflow or "scene-referred-sigmoid", chromatic_adaptation)  # refuse a bad name
    if sidecar is not None:
        edit = Edit.load(sidecar)
    elif sidecar_path(image.path).exists():
        edit = Edit.load(sidecar_path(image.path))
    else:
        xmp_order = None
        xmp = Path(str(image.path) + ".xmp")
        if order is None and xmp.exists():
            from .io.xmp import order_from_xmp, read_xmp_order

            version, text = read_xmp_order(xmp)
            if version is not None or text is not None:
                xmp_order = order_from_xmp(version, text)
        edit = Edit.default_for(image, workflow or "scene-referred-sigmoid", xmp_order or order,
                                chromatic_adaptation)
        return edit
    if order is not None:
        edit.order = order_by_name(order)
    return edit


@dataclass
class Photo:
    """An opened image with its edit."""

    image: SourceImage
    edit: Edit
    notices: list[str] = field(default_factory=list)

    def pipe(self, kind: str = "export", **kw) -> Pipe:
        return Pipe(self.image, self.edit, kind, **kw)

    def render(self, width: int | None = None, height: int | None = None, *, kind: str = "export",
               hq: bool = False, device: str = "cpu") -> np.ndarray:
        """The processed image fitted in width x height, (H, W, 3) float32 in [0, 1]."""
        p = self.pipe(kind, hq=hq, device=device)
        out = p.render(width, height)
        self.notices[:] = p.notices
        return np.ascontiguousarray(out.transpose(1, 2, 0))

    def save_edit(self, path: str | os.PathLike | None = None) -> Path:
        dest = Path(path) if path else sidecar_path(self.image.path)
        self.edit.save(dest)
        return dest

    def export(self, output: str | os.PathLike, *, width: int | None = None, height: int | None = None,
               hq: bool = False, bpp: int = 8, device: str = "cpu", overwrite: bool = False,
               quality: int = 95) -> Path:
        from .io.icc import icc_profile
        from .io.writers import output_format, write_image

        output = Path(output)
        output_format(output)  # refuse an unknown format before any work
        if output.exists() and not overwrite:
            raise OutputError("exists (use --overwrite to replace it)", path=str(output))
        if output.resolve() == Path(self.image.path).resolve():
            raise OutputError("refusing to write over the input image", path=str(output))
        p = self.pipe("export", hq=hq, device=device)
        # 8-bit files: the pipe's last kernel quantises (interleaved bytes, one pass less)
        pixels = p.render(width, height, u8=bpp == 8)
        self.notices[:] = p.notices
        rgb = pixels if bpp == 8 else pixels.transpose(1, 2, 0)
        profile = p.output_profile()
        exif = self.image.raw_exif_bytes or dict(self.image.exif) or None
        written = write_image(output, rgb, bpp=bpp, icc=icc_profile(profile), exif=exif, quality=quality,
                              overwrite=overwrite,
                              metadata={"Software": "pixelpipe",
                                        "pixelpipe:source": os.path.basename(self.image.path)})
        del pixels, rgb
        p.release()  # a warm process's next export reuses the buffers
        return written


def open(path: str | os.PathLike, *, sidecar: str | os.PathLike | None = None, workflow: str | None = None,
         order: str | None = None, chromatic_adaptation: str | None = None) -> Photo:  # noqa: A001
    """Decode ``path`` and attach its edit (sidecar, or defaults for ``workflow`` with
    ``chromatic_adaptation`` "modern" or "legacy", None: the workflow's own)."""
    from .io.decode import load

    image = load(path)
    edit = load_edit(image, sidecar, workflow, order, chromatic_adaptation)
    return Photo(image, edit, list(edit.notices))


def render(path: str | os.PathLike, width: int | None = None, height: int | None = None, **kw) -> np.ndarray:
    """Decode, process with the default (or sidecar) edit and return (H, W, 3) float32."""
    return open(path, sidecar=kw.pop("sidecar", None), workflow=kw.pop("workflow", None),
                order=kw.pop("order", None),
                chromatic_adaptation=kw.pop("chromatic_adaptation", None)).render(width, height, **kw)


def export(input: str | os.PathLike, output: str | os.PathLike, *, sidecar=None, workflow=None, order=None,
           chromatic_adaptation=None, **kw) -> Path:  # noqa: A002
    photo = open(input, sidecar=sidecar, workflow=workflow, order=order, chromatic_adaptation=chromatic_adaptation)
    return photo.export(output, **kw)


__all__ = ["open", "render", "export", "Photo", "Pipe", "Edit", "PixelpipeError"]
