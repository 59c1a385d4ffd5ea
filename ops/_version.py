"""The package version, alone so that importing one subpackage does not import them all."""

__version__ = "0.1.0"
