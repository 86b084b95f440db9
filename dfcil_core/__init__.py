"""dfcil_core: Data-Free Class-Incremental Learning (Always Be Dreaming, ICCV 2021)."""

__version__ = "0.1.0"
