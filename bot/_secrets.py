"""The secrets the service signs with, and where a demo keeps its own.

`PROVIDER_CALLBACK_SECRET` signs every callback URL (and the demo provider's callback bodies);
`MEDIA_LINK_SECRET` signs local storage's media links. A secret made up per process would
break every link minted before a restart and every link another replica minted, so:

- **Outside a demo** both must be set in the environment (the second with local storage only),
  at least `MIN_LENGTH` characters and no placeholder; otherwise the start stops and the
  message names the variable.
- **A demo** makes them once and keeps them in `<data_dir>/secrets.env` (mode 0600), so they
  survive restarts; values set in the environment win.

What a demo is, precisely: `videofly chat` always (one process, its HTTP server on 127.0.0.1,
reached by nothing outside the machine); and `videofly run` when its configuration could not
serve anyone outside this machine: every enabled model uses the `demo` provider, storage is
`local`, and `[http] public_url` names a loopback address (`127.0.0.1`, `::1`, `localhost`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets as token
from pathlib import Path
from urllib.parse import urlsplit

from core.config import Config, Secrets

__all__ = ["MIN_LENGTH", "SecretProblem", "is_demo", "needed", "service_secrets"]

log = logging.getLogger("bot.secrets")

MIN_LENGTH = 16
FILE_NAME = "secrets.env"
_PLACEHOLDERS = ("changeme", "change-me", "change_me", "placeholder", "example", "secret-here")


class SecretProblem(Exception):
    """A secret is missing or unusable; the message names the variable, never its value."""


def needed(config: Config) -> tuple[str, ...]:
    """The signing secrets this configuration uses."""
    local = config.storage.backend == "local"
    return ("PROVIDER_CALLBACK_SECRET", *(("MEDIA_LINK_SECRET",) if local else ()))


def _loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_demo(config: Config) -> bool:
    """True when nothing outside this machine could use the service as configured."""
    return (all(m.provider == "demo" for m in config.models if m.enabled)
            and config.storage.backend == "local" and _loopback(config.http.public_url))


def _unusable(value: str) -> bool:
    return len(value) < MIN_LENGTH or any(p in value.lower() for p in _PLACEHOLDERS)


def service_secrets(config: Config, secrets: Secrets, *, demo: bool = False) -> Secrets:
    """`secrets` with the signing secrets checked; in a demo (`demo`, or `is_demo(config)`)
    the missing ones come from `<data_dir>/secrets.env`, made on first use."""
    for name in needed(config):
        if secrets.get(name) and _unusable(secrets[name]):
            raise SecretProblem(f"environment variable {name} must be at least {MIN_LENGTH} "
                                "characters and not a placeholder")
    missing = [name for name in needed(config) if not secrets.get(name)]
    if not missing:
        return secrets
    if not (demo or is_demo(config)):
        raise SecretProblem(
            f"set the environment variable {missing[0]} (a random string of {MIN_LENGTH}+ "
            "characters, the same on every replica and across restarts); only a demo "
            "(demo models only, local storage, a loopback public_url) makes its own")
    path = Path(config.app.data_dir) / FILE_NAME
    try:
        kept = _load_or_create(path)
    except OSError as exc:
        raise SecretProblem(f"demo mode: cannot keep the demo's secrets in {path}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    absent = [name for name in missing if name not in kept]
    if absent:
        raise SecretProblem(f"demo mode: {path} lacks {absent[0]}; delete the file to make "
                            "new ones (links minted before stop working)")
    log.warning("demo mode: %s not set in the environment; using the demo's own, kept in %s",
                " and ".join(missing), path)
    return Secrets({**secrets, **{name: kept[name] for name in missing}})


def _load_or_create(path: Path) -> dict[str, str]:
    """The secrets in `path`; made first if the file does not exist. Two processes starting
    together agree: each writes a private temporary file and links it into place, and the
    one that finds the file already there reads the other's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        values = {name: token.token_urlsafe(32)
                  for name in ("PROVIDER_CALLBACK_SECRET", "MEDIA_LINK_SECRET")}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{token.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("# Made by VideoFly for a demo; keep private (mode 0600).\n")
                out.writelines(f"{k}={v}\n" for k, v in values.items())
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process was first: theirs
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    kept: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, eq, value = line.partition("=")
        if eq and not name.startswith("#") and value.strip():
            kept[name.strip()] = value.strip()
    return kept
