"""The real Claude Code CLI for the tests: a pinned version from npm in a cache folder, run
against `tests.model_server` on 127.0.0.1, never against Anthropic's service and never
with the person's own Claude config.

`python -m tests.claude_code install` installs it (`.ci/run` does, before the tests); the
tests install it themselves when npm is there, and skip, saying why, when it is not.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "2.1.328"
PACKAGE = "@anthropic-ai/claude-code"
_NPM_QUIET = ("--no-audit", "--no-fund", "--loglevel=error", "--no-save")


def cache_root() -> Path:
    """`$OKSTRA_TEST_CACHE`, else `$XDG_CACHE_HOME/okstra-test`, else `~/.cache/okstra-test`
    of the user running the tests (from the password database: the tests change HOME)."""
    if os.environ.get("OKSTRA_TEST_CACHE"):
        return Path(os.environ["OKSTRA_TEST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".cache")
    return Path(base) / "okstra-test"


def install_dir() -> Path:
    return cache_root() / f"claude-code-{VERSION}"


def binary() -> Path:
    return install_dir() / "node_modules" / ".bin" / "claude"


def installed_version(program: Path) -> str | None:
    """What `claude --version` says (`2.1.328 (Claude Code)` → `2.1.328`), or None."""
    try:
        proc = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = proc.stdout.split()
    return words[0] if proc.returncode == 0 and words else None


def install() -> Path:
    """The pinned CLI, installed once into the cache (under a lock: test processes and CI
    may ask at once; into a temporary folder first, so a killed install leaves nothing
    half there). RuntimeError when npm is missing or the install fails."""
    if installed_version(binary()) == VERSION:
        return binary()
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(binary()) == VERSION:  # another process finished it meanwhile
            return binary()
        work = Path(tempfile.mkdtemp(prefix=".claude-code-", dir=root))
        try:
            proc = subprocess.run(
                [npm, "install", "--prefix", str(work), *_NPM_QUIET, f"{PACKAGE}@{VERSION}"],
                capture_output=True,
                text=True,
                timeout=600,
                stdin=subprocess.DEVNULL,
            )
            got = installed_version(work / "node_modules" / ".bin" / "claude")
            if proc.returncode != 0 or got != VERSION:
                raise RuntimeError(
                    f"npm install {PACKAGE}@{VERSION} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
                )
            shutil.rmtree(install_dir(), ignore_errors=True)
            work.rename(install_dir())
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(work)
    return binary()


def agent_env(base_url: str, *, path: str) -> dict[str, str]:
    """The whole environment of a claude the tests start: the test's own homes (HOME,
    CLAUDE_CONFIG_DIR, OKSTRA_HOME, OKSTRA_CONFIG from the `isolated_env` fixture), the
    scripted server as the API, nothing else of the person's (no key, no config)."""
    env = {
        "PATH": path,
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-okstra-test",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    for name in ("HOME", "CLAUDE_CONFIG_DIR", "OKSTRA_HOME", "OKSTRA_CONFIG", "TMPDIR"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if os.getuid() == 0:
        env["IS_SANDBOX"] = "1"  # claude refuses --permission-mode bypassPermissions as root without it
    return env


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python -m tests.claude_code install")
    try:
        print(f"claude {installed_version(install())} at {binary()}")
    except RuntimeError as exc:
        sys.exit(f"cannot install the Claude Code CLI: {exc}")
