"""Every read the config makes outside its arguments: the config file, the environment,
password files and whether a driver module can be imported.

The rest of the package validates values it is handed; keeping the reads here makes that
rest testable without a file system and shows in one place what a config can touch.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from clusterdb.config.schema import check_str
from clusterdb.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "config_file",
    "module_exists",
    "password_from_env",
    "password_from_file",
    "provider_from_path",
    "read_config",
]

CONFIG_ENV = "CLUSTERDB_CONFIG"
"""Environment variable naming the default config file."""


def config_file(path: str | os.PathLike[str] | None) -> Path:
    """``path``, or the file named by :data:`CONFIG_ENV` when ``path`` is None."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
        if path is None:
            raise ConfigError(
                f"no config file given: pass a path to load_config(path) or set {CONFIG_ENV}"
            )
    return Path(path)


def read_config(file: Path) -> tuple[dict[str, object], Path]:
    """The parsed TOML document of ``file`` and the directory it is in (for relative paths)."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(file)!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from None
    return data, file.resolve().parent


def password_from_env(name: object, path: str) -> str:
    """The value of the environment variable ``name`` (``password_env``), which must be set."""
    var = check_str(name, path)
    if not var:
        raise ConfigError("must name an environment variable", path)
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"environment variable {var!r} is not set", path)
    if not value:
        raise ConfigError(f"environment variable {var!r} is empty", path)
    return value


def password_from_file(name: object, path: str, base: Path | None) -> str:
    """The content of file ``name`` (``password_file``) minus one trailing newline.

    A relative ``name`` is taken from ``base`` (the config file's directory), or from the
    current directory when ``base`` is None (register() keywords).
    """
    file = (base if base is not None else Path.cwd()) / Path(check_str(name, path)).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read password file {str(file)!r}: {exc.strerror}", path
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"password file {str(file)!r} is not UTF-8 text", path) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError(f"password file {str(file)!r} is empty", path)
    return text


def module_exists(name: str) -> bool:
    """True when the top-level package of module ``name`` can be imported (not importing it)."""
    return importlib.util.find_spec(name.split(".")[0]) is not None


def provider_from_path(spec: object, path: str) -> Callable[[], Any]:
    """The callable named by ``spec``, ``"package.module:name"`` (or ``"package.module.name"``;
    the name may be dotted: ``"mod:Class.method"``), imported now: a password provider."""
    text = check_str(spec, path).strip()
    module_name, sep, attr = text.partition(":")
    if not sep:
        module_name, _, attr = text.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"must name a callable as 'module:name', got {text!r}", path)
    try:
        found: object = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import {module_name!r}: {type(exc).__name__}", path) from None
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{module_name!r} has no {attr!r}", path) from None
    if not callable(found):
        raise ConfigError(f"{text!r} is not callable", path)
    return cast("Callable[[], Any]", found)  # callable() checked it
