"""Model conversion tooling (the project's counterpart of darktable-ai).

Each ``convert_*`` module rebuilds one architecture in PyTorch (written for
this project from the descriptions in ``shared/models/SOURCES.md``), loads the
shared trained weights, exports ONNX and packages a darktable-style
``<id>.dtmodel``.  ``dtmodel`` holds the packaging and checking helpers and
``convert_all`` is the command line.  PyTorch is needed only here, never at
run time.
"""
