"""What a literal call argument looks like: code, a shell line, a sensitive path or a URL.

The pickle analyzer raises a call of an unknown global from high to critical when
one of its arguments matches (``risky_text``). The checks read the text only:
Python source is parsed with ``ast`` (never compiled or run), shell lines are
recognised by their first word or their operators, paths by their root.
"""

from __future__ import annotations

import ast
import re

MAX_TEXT = 4096
"""Characters of an argument examined."""

_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]{1,15})://\S", re.IGNORECASE)
_SHELL_WORDS = frozenset(
    "sh bash zsh dash ksh csh fish cmd cmd.exe powershell pwsh curl wget nc ncat netcat touch rm mv cp chmod chown "
    "python python3 perl ruby php node env exec eval sudo su kill pkill ssh scp rsync base64 openssl tar unzip "
    "dd mkfifo crontab systemctl service useradd echo cat tee id whoami uname ping nslookup dig".split()
)
_SHELL_OPERATORS = re.compile(r"(?:;|&&|\|\||\$\(|`|\|\s*\w|>\s*/|<\s*/|\$\{)")
_SENSITIVE_ROOTS = re.compile(
    r"^\s*(?:~|\$HOME|%[A-Z]+%|/(?:home|root|etc|usr|bin|sbin|lib|lib64|var|tmp|dev|proc|sys|boot|opt|srv|run|"
    r"Users|Library|System|private)(?:/|$)|[A-Za-z]:[\\/]|\\\\)"
)
_SENSITIVE_PARTS = re.compile(r"(?:^|[\\/])(?:\.ssh|\.aws|\.bashrc|\.profile|\.config|\.kube|\.netrc|\.git)(?:[\\/]|$)")


def risky_text(text: str) -> str:
    """A short reason when ``text`` looks like code, a shell line, a sensitive path or a URL, else ""."""
    text = text[:MAX_TEXT]
    stripped = text.strip()
    if not stripped:
        return ""
    if _URL.match(stripped):
        return f"argument {_short(stripped)} is a URL"
    first = stripped.split(None, 1)[0].rsplit("/", 1)[-1].lower()
    if first in _SHELL_WORDS and (" " in stripped or "/" in stripped.split(None, 1)[0]):
        return f"argument {_short(stripped)} reads as a shell command"
    if _SENSITIVE_ROOTS.match(stripped) or _SENSITIVE_PARTS.search(stripped):
        return f"argument {_short(stripped)} is a path under a home or system directory"
    if _SHELL_OPERATORS.search(stripped) and " " in stripped and not _looks_like_prose(stripped):
        return f"argument {_short(stripped)} reads as a shell command line"
    if _is_code(stripped):
        return f"argument {_short(stripped)} parses as Python code"
    return ""


def _is_code(text: str) -> bool:
    """Source that does something when run: imports, calls, assignments, several statements, lambdas."""
    if len(text) < 4 or not any(c in text for c in "(=;\n:"):
        return False
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    if len(tree.body) > 1:
        return True
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call, ast.Assign, ast.Lambda, ast.FunctionDef)):
            return True
    return False


def _looks_like_prose(text: str) -> bool:
    return bool(re.fullmatch(r"[\w\s,.;:'\"!?()-]+", text)) and "`" not in text and "$(" not in text


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
