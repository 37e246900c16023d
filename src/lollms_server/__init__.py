"""lollms_server: one self-hosted server in front of many generation backends."""

__version__ = "0.1.0"

__all__ = ["__version__"]
