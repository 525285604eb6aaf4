"""selftrain: a language model improves itself on data it generates.

Importing the package does no work: no model is built, nothing is read or written.
"""

__version__ = "0.1.0"
