"""pixelpipe: a raw-photo engine built on darktable's processing model.

Python API: :func:`open`, :func:`render`, :func:`export`, :class:`Pipe`, :class:`Edit`.
"""
import warnings as _warnings

__version__ = "0.1.0"

# colour-science warns about optional extras (SciPy, Matplotlib) we do not use
_warnings.filterwarnings("ignore", message=r'.*"(SciPy|Matplotlib|Pandas|Trimesh|NetworkX|OpenImageIO)" related API')


def __getattr__(name):  # lazy: `import pixelpipe` stays cheap (no Halide, no rawpy)
    if name in ("open", "render", "export", "Photo"):
        from . import api

        return getattr(api, name)
    if name == "Pipe":
        from .pipe.pipeline import Pipe

        return Pipe
    if name == "Edit":
        from .pipe.history import Edit

        return Edit
    if name == "PixelpipeError":
        from .errors import PixelpipeError

        return PixelpipeError
    raise AttributeError(name)
