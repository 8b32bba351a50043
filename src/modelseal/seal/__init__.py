"""The seal artifact: manifest, digests, safe archives."""

from modelseal.seal.artifact import Seal, open_seal, read_manifest
from modelseal.seal.digests import FileCheck
from modelseal.seal.manifest import SealManifest

__all__ = ["FileCheck", "Seal", "SealManifest", "open_seal", "read_manifest"]
