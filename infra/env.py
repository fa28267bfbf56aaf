"""The one place that says how every process of this project talks to Prefect.

Every process (server, serve, workers, flow runs, CLI calls) gets the same four settings; without PREFECT_API_URL a
Prefect CLI call silently starts a throw-away server and answers 'Deployment not found'. The local stack is
configured by three variables of our own:

    WEBTEXT_HOST         address the local server binds (default 127.0.0.1)
    WEBTEXT_PORT         its port (default 4200)
    WEBTEXT_PREFECT_HOME Prefect's home: SQLite database, logs, PID files (default <checkout>/.prefect)
    WEBTEXT_DATABASE_URL the server's database instead of SQLite in the home, e.g. PostgreSQL:
                         postgresql+asyncpg://USER:PASSWORD@HOST:5432/DBNAME (Prefect creates the tables)
    WEBTEXT_AUTH_FILE    a file readable only by its owner holding the API's auth string `user:password`
                         (default <home>/auth-string, used when it exists); required beyond loopback

WEBTEXT_DEPLOYMENTS (comma-separated names) limits which deployments a machine serves or registers (infra/deployments.py).

`python infra/env.py` prints the settings as `export` lines; `infra/env.sh` sources them into a shell.
This module imports nothing heavy (no prefect) so that it is cheap to run from the shell.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import stat
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
LIBRARY_LOGGERS = ("corpus", "tokenization", "modeling", "evaluation")  # the packages that never import Prefect
SERVICE_MARK = "WEBTEXT_SERVICE_HOME"


def stack_host(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("WEBTEXT_HOST", DEFAULT_HOST)


def stack_port(environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get("WEBTEXT_PORT", str(DEFAULT_PORT))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"WEBTEXT_PORT must be a TCP port number (1-65535), got {raw!r}")
    return int(raw)


def stack_home(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("WEBTEXT_PREFECT_HOME", REPO / ".prefect")).resolve()


DATABASE_SCHEMES = ("postgresql+asyncpg://", "sqlite+aiosqlite://")


def database_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """WEBTEXT_DATABASE_URL, checked; None means Prefect's default, SQLite in PREFECT_HOME."""
    raw = environ.get("WEBTEXT_DATABASE_URL", "").strip()
    if not raw:
        return None
    if not raw.startswith(DATABASE_SCHEMES):
        shown = raw.split("@")[-1] if "@" in raw else raw  # never print a password
        raise ValueError(
            f"WEBTEXT_DATABASE_URL must start with {' or '.join(DATABASE_SCHEMES)} (Prefect's async "
            f"drivers), got ...{shown!r}"
        )
    return raw


def describe_database(environ: Mapping[str, str] = os.environ) -> str:
    """Where the server keeps its state, for status lines (no password)."""
    url = database_url(environ)
    if url is None:
        return f"SQLite {stack_home(environ) / 'prefect.db'}"
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    return f"{kind} {url.split('@')[-1] if '@' in url else url.split('://', 1)[1]}"


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server unreachable from other machines (a hostname other than localhost
    may resolve to anything, so it counts as beyond loopback)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_host(host: str) -> str:
    """The address this machine's clients use for a server bound to `host` (a wildcard bind answers on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def api_url(host: str, port: int) -> str:
    host = client_host(host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/api"


# Prefect's basic authentication: the server compares the Authorization header of every request but /health with
# SERVER_AUTH; every client (CLI, serve, workers, flow runs) sends CLIENT_AUTH. Both hold the same `user:password`.
SERVER_AUTH = "PREFECT_SERVER_API_AUTH_STRING"
CLIENT_AUTH = "PREFECT_API_AUTH_STRING"
AUTH_FILE_NAME = "auth-string"


def auth_file(home: Path, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("WEBTEXT_AUTH_FILE") or home / AUTH_FILE_NAME)


def stack_auth(home: Path, environ: Mapping[str, str] = os.environ) -> str | None:
    """The stack's auth string from WEBTEXT_AUTH_FILE (default <home>/auth-string); None when the default file does
    not exist. The file must belong to us and be readable by nobody else. Errors name the file, never its content."""
    path = auth_file(home, environ)
    try:
        info = path.stat()
    except FileNotFoundError:
        if environ.get("WEBTEXT_AUTH_FILE"):
            raise ValueError(f"WEBTEXT_AUTH_FILE names {path}, which does not exist") from None
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"the auth file {path} is not a regular file")
    if info.st_uid != os.getuid():
        raise ValueError(f"the auth file {path} belongs to uid {info.st_uid}, not to us (uid {os.getuid()})")
    if info.st_mode & 0o077:
        raise ValueError(
            f"the auth file {path} can be read by others (mode {stat.S_IMODE(info.st_mode):o}); make "
            f"it private with `chmod 600 {path}`"
        )
    lines = path.read_text().splitlines()
    user, colon, password = (lines[0] if len(lines) == 1 else "").partition(":")
    if not (user and colon and password) or lines[0] != lines[0].strip():
        raise ValueError(f"the auth file {path} must hold one line `user:password` (no spaces around it)")
    return lines[0]


def server_settings(host: str, auth: str | None) -> dict[str, str]:
    """The server-only settings: its auth string; CSRF protection when others may reach it (bound beyond loopback,
    or behind a proxy, which an auth string on loopback stands for; the classic UI and Prefect's clients fetch
    tokens); and a UI that reaches the API at whatever address the browser used (same origin)."""
    settings = {"PREFECT_SERVER_UI_API_URL": "/api"}
    if auth:
        settings[SERVER_AUTH] = auth
    if auth or not is_loopback(host):
        settings["PREFECT_SERVER_CSRF_PROTECTION_ENABLED"] = "true"
    return settings


def prefect_env(home: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> dict[str, str]:
    """The Prefect settings every process of one stack shares: its home, its API and no telemetry."""
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url(host, port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # server heartbeat to sens-o-matic.prefect.io
        "DO_NOT_TRACK": "1",  # SDK telemetry (api2.amplitude.com)
        # The v2 UI initialises Amplitude (sr-client-cfg.amplitude.com) on every page load; the classic UI is offline.
        "PREFECT_SERVER_UI_V2_ENABLED": "false",
        # Our libraries' log records (e.g. "file:line: skipped malformed line") go to the flow run's logs in the
        # UI/API, not only to the serve process's output.
        "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(LIBRARY_LOGGERS),
    }


def service_env(
    home: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """Full environment for a long-running service (server, serve, worker) and the flow runs it spawns.

    Scratch files (Prefect's runner storage, Dask spill, torch inductor, newspaper) go to the stack's home instead of
    /tmp, caches and configs (tldextract, Hugging Face, Chromium) to the checkout's .cache instead of ~, nothing
    downloads models, and the checkout is importable so `flows.*` resolves.
    """
    env = {key: value for key, value in base.items() if key not in (SERVER_AUTH, CLIENT_AUTH)}
    env.update(prefect_env(home, host, port))
    if (auth := stack_auth(home, base)) is not None:
        env[CLIENT_AUTH] = auth
    scratch = home / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(scratch)
    # Each server copies the UI bundle here instead of into site-packages: parallel servers never race on one copy.
    env["PREFECT_SERVER_UI_STATIC_DIRECTORY"] = str(home / "ui")
    env["XDG_CACHE_HOME"] = str(REPO / ".cache")
    env["XDG_CONFIG_HOME"] = str(REPO / ".cache" / "config")
    env["HF_HUB_OFFLINE"] = "1"  # a checkpoint name that is not a local folder must fail, not download
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # logs reach the log files as they happen
    env[SERVICE_MARK] = str(home)  # inherited by every process a service starts: `make status` finds survivors by it
    if (url := database_url(base)) is not None:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = url
    return env


def local_stack_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The Prefect settings of the local stack `make up` runs, as chosen by WEBTEXT_HOST/PORT/PREFECT_HOME."""
    return prefect_env(stack_home(environ), stack_host(environ), stack_port(environ))


def client_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Full environment for a client of the local stack (`make run`, `infra.deploy`, the demo).

    An explicit PREFECT_API_URL (another server, e.g. production) wins over the local stack's; the local stack's
    auth string is then not sent there (the environment's PREFECT_API_AUTH_STRING is).
    """
    env = dict(environ)
    local = local_stack_env(environ)
    env.update(local)
    explicit = environ.get("PREFECT_API_URL")
    if explicit and explicit != local["PREFECT_API_URL"]:
        env["PREFECT_API_URL"] = explicit
    elif (auth := stack_auth(stack_home(environ), environ)) is not None:
        env[CLIENT_AUTH] = auth
    return env


def main() -> None:
    try:
        settings = local_stack_env()
        auth_path = auth_file(stack_home()) if stack_auth(stack_home()) is not None else None
    except ValueError as exc:
        raise SystemExit(f"infra/env.py: {exc}") from None
    for key, value in settings.items():
        print(f"export {key}={shlex.quote(value)}")
    if auth_path is not None:  # the shell reads the file itself: the string is never printed
        print(f'export {CLIENT_AUTH}="$(cat {shlex.quote(str(auth_path))})"')


if __name__ == "__main__":
    main()
