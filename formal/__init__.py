"""Formal proofs of the accelerator's and the link's contracts with SymbiYosys (from PyPI)."""
