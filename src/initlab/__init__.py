"""initlab: a Hydra + Lightning template for studying weight initialisation x activation functions."""

__version__ = "0.1.0"
