"""synth: symbolic program synthesis of zero-cost proxies for neural architecture search."""

__all__ = ["__version__"]

__version__ = "0.1.0"
