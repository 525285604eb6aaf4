from selftrain.verifiers.base import Verifier

__all__ = ["Verifier"]
