"""Errors that khop reports to a user as one clear line (exit status 2 on the command line)."""

__all__ = ["KhopError", "NetworkFileError", "ParameterError"]


class KhopError(Exception):
    """Base of every error khop reports without a traceback."""


class NetworkFileError(KhopError):
    """A network file is missing, truncated, corrupt, foreign or inconsistent."""


class ParameterError(KhopError, ValueError):
    """A parameter is outside its allowed range."""
