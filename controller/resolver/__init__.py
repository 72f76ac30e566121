"""Dependency resolution: references a model makes -> local bytes mlgate can scan.

``interface`` holds the contract (``Origin``, ``Resolution``, ``Resolver``);
``registry`` dispatches by reference kind and builds the default set from the
environment; ``hf``, ``local``, ``mlflow`` and ``s3`` are the sources.
"""

from .interface import Origin, Resolution, Resolver, unresolved
from .registry import ResolverRegistry, default_resolver

__all__ = ["Origin", "Resolution", "Resolver", "ResolverRegistry", "default_resolver", "unresolved"]
