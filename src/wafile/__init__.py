"""wafile: send files over WhatsApp, fall back to SMS, and report every outcome."""

__version__ = "0.1.0"
__all__ = ["__version__"]
