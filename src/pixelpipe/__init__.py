"""pixelpipe: a raw-photo engine built on darktable's processing model."""
__version__ = "0.1.0"
