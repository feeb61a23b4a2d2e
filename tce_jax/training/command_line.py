"""The command line of the entry points: a config file flag and its overrides.

``launch.py`` and ``sweep.py`` load their config with a
``config_flags.DEFINE_config_file`` flag; here is how its problems become one
line each (``config_from_flag``, ``parse_flags``, ``unknown_override``) and the
flag parser both entry points hand to ``app.run`` (``parser_exiting_with``).
"""

import difflib
import re
import sys
from collections.abc import Callable, Sequence

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from tce_jax.training.config import ConfigError


def config_from_flag(flag: flags.FlagHolder) -> ml_collections.ConfigDict:
    """The config a ``config_flags.DEFINE_config_file`` flag loaded.

    Raises:
      ConfigError: the file did not load (missing, or not a config file); one
        line naming the flag, the file and the reason.
    """
    config = flag.value
    try:
        config.keys()  # config_flags defers a load failure to the first access.
    except OSError as error:
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        path = config_flags.get_config_filename(flags.FLAGS[flag.name])
        raise ConfigError(
            f"--{flag.name}={path}: cannot load it "
            f"({lines[-1] if lines else type(cause).__name__}); allowed: a config "
            "file defining get_config()"
        ) from None
    return config


def parse_flags(argv: Sequence[str], config_flag: flags.FlagHolder) -> list[str]:
    """absl's flag parsing (``app.run``'s ``flags_parser``), with config typos
    as a ConfigError.

    config_flags raises a bare AttributeError or KeyError, with a traceback,
    when an override such as ``--config.loss.gamma_typo=3`` names no field.

    Raises:
      ConfigError: an override names no field of the config; one line naming
        the override and the nearest valid names.
    """
    try:
        return app.parse_flags_with_usage(list(argv))
    except (AttributeError, KeyError):
        error = unknown_override(argv, config_flag.name)
        if error is None:
            raise
        raise error from None


def unknown_override(argv: Sequence[str], name: str) -> ConfigError | None:
    """The first ``--<name>.<path>`` override in argv that names no config field.

    Args:
      argv: the command line.
      name: the name of a ``config_flags.DEFINE_config_file`` flag.

    Returns:
      A ConfigError naming the override and the nearest fields (difflib), or
      None: every override names a field, or the config file is not given.
    """
    config_arg = re.compile(rf"^--?{re.escape(name)}(?:=(.*))?$")
    override_arg = re.compile(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)")
    path, overrides = None, []
    for i, arg in enumerate(argv[1:], start=1):
        if match := config_arg.match(arg):
            path = match.group(1)
            if path is None and i + 1 < len(argv):
                path = argv[i + 1]
        elif match := override_arg.match(arg):
            overrides.append(match.group(1))
    if path is None:
        return None
    config = flags.FLAGS[name].parser.parse(path)
    for dotted in overrides:
        holder, prefix = config, name
        for field in dotted.split("."):
            if not isinstance(holder, ml_collections.ConfigDict | dict):
                break  # A leaf (tuple, dataclass): config_flags says what is wrong.
            fields = sorted(holder.keys())
            if field not in fields:
                nearest = difflib.get_close_matches(field, fields, n=3)
                names = ", ".join(f"{prefix}.{f}" for f in nearest or fields)
                return ConfigError(
                    f"--{name}.{dotted}: {prefix} has no field {field!r}; "
                    f"{'nearest' if nearest else 'allowed'}: {names}"
                )
            holder, prefix = holder[field], f"{prefix}.{field}"
    return None


def parser_exiting_with(
    config_flag: flags.FlagHolder, program: str, status: int
) -> Callable[[list[str]], list[str]]:
    """An ``app.run`` flags parser: ``parse_flags``, and on a config typo the
    one-line error as ``<program>: <error>`` on stderr and exit ``status``."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return parse_flags(argv, config_flag)
        except ConfigError as error:
            print(f"{program}: {error}", file=sys.stderr, flush=True)
            sys.exit(status)

    return parse
