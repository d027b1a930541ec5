"""What every ``khop`` subcommand module shares: the usage error, the subparser factory with its
help formatter, and the conversion of a library ``ValueError`` into a
:class:`~khop.model.errors.ParameterError`."""

import argparse
import inspect

from khop.model.errors import KhopError, ParameterError

__all__ = ["UsageError", "HelpFormatter", "add_subcommand", "checked", "explains_default"]


class UsageError(KhopError):
    """A bad command line."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's formatter that appends "(default: ...)" to each option's help, except for an
    option whose help already says what its default means (marked by :func:`explains_default`,
    e.g. the hardware options, whose unset value is the target's choice, not a literal None)."""

    def _get_help_string(self, action):
        if getattr(action, "explains_default", False):
            return action.help
        return super()._get_help_string(action)


def explains_default(action):
    """Mark ``action`` (from ``add_argument``): its help states its default; returns it."""
    action.explains_default = True
    return action


def checked(factory, **kwargs):
    """``factory(**kwargs)`` with its ``ValueError`` reported as a :class:`ParameterError`."""
    try:
        return factory(**kwargs)
    except ValueError as e:
        raise ParameterError(str(e)) from None


def add_subcommand(subparsers, name, summary, func, **fields):
    """The parser of subcommand ``name`` on ``subparsers``, run by ``func(args)``.

    ``summary`` goes into the command list; ``--help`` shows the docstring of ``func`` (which
    thereby documents the subcommand once), its ``{field}`` placeholders filled from ``fields``,
    and every option's default.
    """
    description = " ".join(inspect.getdoc(func).split())
    if fields:
        description = description.format(**fields)
    p = subparsers.add_parser(name, help=summary, description=description,
                              formatter_class=HelpFormatter)
    p.set_defaults(func=func)
    return p
