# Source me from bash or zsh:  source infra/env.sh
# Points the `prefect` CLI (and anything else you start from this shell) at the local stack of `make up`:
# PREFECT_HOME, PREFECT_API_URL and telemetry off, as computed by infra/env.py (WEBTEXT_HOST / WEBTEXT_PORT /
# WEBTEXT_PREFECT_HOME choose another stack), PREFECT_API_AUTH_STRING read from the stack's auth file when it has one
# (WEBTEXT_AUTH_FILE; the string is never printed), and puts the project's .venv/bin first on PATH.
_webtext_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
if [ -x "$_webtext_root/.venv/bin/python" ]; then
    _webtext_python="$_webtext_root/.venv/bin/python"
    case ":$PATH:" in *":$_webtext_root/.venv/bin:"*) ;; *) PATH="$_webtext_root/.venv/bin:$PATH" ;; esac
    export PATH
else
    _webtext_python=python3
fi
eval "$("$_webtext_python" "$_webtext_root/infra/env.py")"
_WEBTEXT_ROOT="$_webtext_root" _WEBTEXT_PYTHON="$_webtext_python"  # shell variables for the function below
unset _webtext_root _webtext_python

# `prefect` commands that talk to the API first check that the server answers, and otherwise say to `make up`
# (instead of a connection traceback). `command prefect ...` skips the check.
prefect() {
    case "${1:-}" in
        ""|-*|server|version|config|profile|profiles) ;;
        *) PYTHONPATH="$_WEBTEXT_ROOT" "$_WEBTEXT_PYTHON" -m infra.server || return 1 ;;
    esac
    command prefect "$@"
}
