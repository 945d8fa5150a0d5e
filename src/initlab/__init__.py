"""initlab: a Hydra + Lightning template for studying weight initialisation x activation functions."""

import time

__version__ = "0.1.0"
IMPORTED_AT = time.time()  # ~process start: the entry point imports this package first
