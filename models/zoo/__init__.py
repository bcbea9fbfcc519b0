"""The zoo: named architectures built from the attention modules (see registry.py)."""

from models.zoo.builder import build_model
from models.zoo.registry import ARCHITECTURES, architecture_names, get_architecture

__all__ = ["ARCHITECTURES", "architecture_names", "build_model", "get_architecture"]
