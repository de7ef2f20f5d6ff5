"""jaxconv's version: one place, read by the package and checked against the native extension
(which is compiled with the project version from ``pyproject.toml``; a test keeps the two equal)."""

__version__ = "0.1.0"
