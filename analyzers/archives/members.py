"""Member policy shared by every archive format: names, types, modes, duplicates and links.

A container analyzer describes each member as a ``Member`` and hands it to a
``MemberAudit``, which returns the member's location (duplicates get ``#2``,
``#3``... so every copy is scanned under its own location while keeping its
name for sniffing) and the findings the member raises on its own. ``finish()``
reports duplicate groups once every member has been seen.
"""

from __future__ import annotations

import enum
import re
import stat
import unicodedata

from ..core.artifact import LEVEL_SEPARATOR, Artifact, HeadReader, Opener
from ..core.budget import BudgetExceeded, BudgetTracker
from ..core.findings import Finding, Severity
from ..core.kinds import posix_name
from ..core.records import NamedTuple
from . import rules

LOADER_NAMES = frozenset(
    {
        "data.pkl",  # torch.load
        "constants.pkl",  # TorchScript
        "config.json",  # .keras
        "metadata.json",  # .keras
        "model.weights.h5",  # .keras
        "model_weights.ckpt",  # .nemo
        "model_config.yaml",  # .nemo
        "saved_model.pb",  # SavedModel
        "keras_metadata.pb",  # Keras 2 SavedModel
    }
)
"""Member base names a loader reads by name: a duplicate of one of them decides what gets loaded."""

MAX_NAME_BYTES = 4096
MAX_COMPONENT_BYTES = 255
_MAX_LINK_HOPS = 40  # Linux ELOOP limit
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHELL_VAR = re.compile(r"\$(\{?[A-Za-z_][A-Za-z0-9_]*|\()")
_WINDOWS_VAR = re.compile(r"%[A-Za-z_][A-Za-z0-9_()]*%")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _expansion(name: str) -> str:
    """Why shells expand this member name (home directory, variables, command substitution), or ""."""
    if name.startswith("~") or name.replace("\\", "/").startswith("./~"):
        return "starts with '~', which shells expand to a home directory"
    if ("$" in name and _SHELL_VAR.search(name)) or ("%" in name and _WINDOWS_VAR.search(name)):
        return "contains a variable or command expansion ($VAR, ${VAR}, $(...), %VAR%)"
    return ""


class MemberType(enum.Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"
    FIFO = "fifo"
    SOCKET = "socket"


_SPECIAL_TYPES = frozenset({MemberType.DEVICE, MemberType.FIFO, MemberType.SOCKET})
_LINK_TYPES = frozenset({MemberType.SYMLINK, MemberType.HARDLINK})


class Member(NamedTuple):
    """One archive member as the policy sees it."""

    name: str
    type: MemberType
    link_target: str = ""  # symlink target, or the archive path a hardlink names
    mode: int | None = None  # permission bits (incl. setuid/setgid/sticky) when the format records them
    where: str = ""  # how the format identifies the entry, for messages ("central-directory entry 3")


class ContainerPolicy(NamedTuple):
    """What consumers do with one container format."""

    container: str  # "zip", "tar", "7z"
    extracted: bool  # consumers usually extract it to disk (tar, .nemo): escapes become file writes
    first_reader: str  # who reads the first of duplicate copies
    last_reader: str  # who reads (or leaves on disk) the last copy
    climb_consequence: str  # what extracting a '..' name does
    absolute_consequence: str  # what extracting a '/'-rooted name does


ZIP = ContainerPolicy(
    "zip",
    extracted=False,
    first_reader="PyTorch's reader (torch.load) reads the first copy",
    last_reader="Python's zipfile (and Keras) read the last copy",
    climb_consequence="Python's zipfile drops the '..', but other extractors write it outside the target directory",
    absolute_consequence="Python's zipfile strips the '/', other extractors write it there",
)
TAR = ContainerPolicy(
    "tar",
    extracted=True,
    first_reader="an inspector that stops at the first match sees the first copy",
    last_reader="tar extraction (tarfile.extractall, NeMo restore) leaves the last copy on disk and tarfile.getmember "
    "returns it",
    climb_consequence="tar extraction without a filter (NeMo restore, tarfile.extractall) writes it outside the target",
    absolute_consequence="tarfile.extractall without a filter writes it there as-is",
)
SEVENZIP = ContainerPolicy(
    "7z",
    extracted=False,
    first_reader="py7zr extracts the first copy under the plain name (later ones as <name>_<n>)",
    last_reader="7-Zip extraction overwrites with the last copy",
    climb_consequence="py7zr refuses it, but other 7z extractors may write it outside the target directory",
    absolute_consequence="7-Zip strips the '/' by default, other extractors may write it there",
)


def member_artifact(
    parent: Artifact,
    name: str,
    location: str,
    opener: Opener,
    size: int | None,
    head_reader: HeadReader | None = None,
) -> Artifact:
    """A child artifact for an archive member under an explicit location (duplicates carry ``#n``)."""
    return Artifact(
        location=location,
        name=name,
        opener=opener,
        size=size,
        depth=parent.depth + 1,
        parent=parent,
        container=str(parent.kind.value) if parent.kind is not None else "archive",  # type: ignore[attr-defined]
        head_reader=head_reader,
    )


def stop_if_spent(tracker: BudgetTracker) -> None:
    """Raise when a target-wide budget is spent, so a container stops instead of visiting its other members."""
    tracker.check_time()
    budgets = tracker.budgets
    if tracker.members >= budgets.max_members:
        raise BudgetExceeded("max_members", f"more than {budgets.max_members} files and members")
    if tracker.bytes_read > budgets.max_bytes:
        raise BudgetExceeded("max_bytes", f"more than {budgets.max_bytes} bytes read or decompressed")


def display_name(name: str) -> str:
    """The member name used in locations and as the child's name: leading ``./`` dropped (NeMo style)."""
    while name.startswith("./") and len(name) > 2:
        name = name[2:]
    return name


def _parts(path: str) -> list[str]:
    """Path components after normalising ``\\`` to ``/`` (empty and ``.`` components dropped)."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path))


def _dup_key(name: str) -> str:
    """The file a name lands on after case folding, NFC, ``./`` stripping and ``\\`` -> ``/``."""
    return "/".join(_parts(unicodedata.normalize("NFC", name))).casefold()


class MemberAudit:
    """Per-container state: locations, duplicate groups, and the links seen so far."""

    def __init__(self, parent: Artifact, policy: ContainerPolicy) -> None:
        self._parent = parent
        self._policy = policy
        self._copies: dict[str, int] = {}
        self._groups: dict[str, list[tuple[str, str, str]]] = {}  # key -> [(name, location, where)]
        self._symlinks: dict[tuple[str, ...], str] = {}  # member path -> raw target

    def add(self, member: Member) -> tuple[str, list[Finding]]:
        """The member's location and the findings its name, type, mode and links raise."""
        shown = display_name(member.name)
        copies = self._copies.get(shown, 0) + 1
        self._copies[shown] = copies
        location = f"{self._parent.location}{LEVEL_SEPARATOR}{shown}"
        if copies > 1:
            location += f"#{copies}"
        findings = self._name_findings(member.name, location)
        findings += self._type_findings(member, location)
        if member.type is not MemberType.DIR and _parts(member.name):
            self._groups.setdefault(_dup_key(member.name), []).append((member.name, location, member.where))
        return location, findings

    def name_findings(self, name: str, location: str) -> list[Finding]:
        """Findings for a name alone (also used for a zip local-header name that differs)."""
        return self._name_findings(name, location)

    def finish(self) -> list[Finding]:
        """One finding per group of members that land on the same file."""
        out = []
        for key, copies in self._groups.items():
            if len(copies) < 2:
                continue
            severity = Severity.HIGH if posix_name(key) in LOADER_NAMES else Severity.MEDIUM
            names = [name for name, _, _ in copies]
            if len(set(names)) == 1:
                what = f"{len(copies)} copies of {names[0]!r}"
            else:
                shown = ", ".join(repr(n) for n in dict.fromkeys(names))
                what = f"{shown} {_collision(names)}"
            first, last = copies[0], copies[-1]
            message = (
                f"{what}: {self._policy.first_reader} ({_copy(first)}); {self._policy.last_reader} ({_copy(last)}); "
                f"every copy was scanned ({', '.join(loc for _, loc, _ in copies)})"
            )
            out.append(rules.DUPLICATE.finding(copies[1][1], message, severity=severity))
        return out

    # --- names ------------------------------------------------------------------------
    def _name_findings(self, name: str, location: str) -> list[Finding]:
        if name in (".", "./"):
            return []
        out: list[Finding] = []
        extracted = self._policy.extracted
        raw_climbs = ".." in name and ".." in name.split("/")
        if raw_climbs or (".." in name and ".." in _parts(name)):
            how = "" if raw_climbs else " on Windows, where '\\' separates directories"
            severity = Severity.CRITICAL if extracted and raw_climbs else Severity.HIGH
            message = f"member name {name!r} climbs out with '..'{how}; {self._policy.climb_consequence}"
            out.append(rules.TRAVERSAL.finding(location, message, severity))
        absolute = self._absolute_kind(name)
        if absolute:
            severity = Severity.CRITICAL if extracted and name.startswith("/") else None
            out.append(rules.ABSOLUTE.finding(location, f"member name {name!r} is {absolute}", severity))
        expansion = _expansion(name)
        if expansion:
            out.append(
                rules.EXPANSION.finding(
                    location,
                    f"member name {name!r} {expansion}: extraction by shell-based tooling (tar/unzip in scripts, "
                    "Makefiles, CI steps) writes outside the target directory; legitimate model archives never "
                    "carry such names",
                )
            )
        odd = self._odd_name(name)
        if odd:
            out.append(rules.ODD_NAME.finding(location, f"member name {name!r} {odd}"))
        return out

    def _absolute_kind(self, name: str) -> str:
        if name[:1] not in ("/", "\\") and name[1:2] != ":":  # the usual case, decided without a regex
            return ""
        if name.startswith(("\\\\", "//")):
            return "a UNC network path; Windows tools write to or fetch from that server"
        if _DRIVE.match(name):
            return "a Windows drive path; Windows extractors write there"
        if name.startswith("/"):
            return f"an absolute path; {self._policy.absolute_consequence}"
        if name.startswith("\\"):
            return "an absolute Windows path (leading '\\')"
        return ""

    @staticmethod
    def _odd_name(name: str) -> str:
        if _CONTROL.search(name):
            return "contains NUL or control characters (readers truncate or mangle it differently)"
        encoded = name.encode("utf-8", "surrogatepass")
        if len(encoded) > MAX_NAME_BYTES:
            return f"is {len(encoded)} bytes long (file systems stop at {MAX_NAME_BYTES})"
        if len(encoded) > MAX_COMPONENT_BYTES and any(
            len(p.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES for p in name.split("/")
        ):
            return f"has a path component longer than {MAX_COMPONENT_BYTES} bytes"
        return ""

    # --- types, modes, links -------------------------------------------------------------
    def _type_findings(self, member: Member, location: str) -> list[Finding]:
        out = []
        if member.type in _SPECIAL_TYPES:
            out.append(
                rules.SPECIAL_FILE.finding(
                    location, f"{member.type.value} member {member.name!r}: extracting it creates a special file"
                )
            )
        if member.mode is not None and member.type not in _LINK_TYPES:
            odd = _odd_mode(member.mode)
            if odd:
                out.append(
                    rules.ODD_MODE.finding(
                        location, f"member {member.name!r} has mode {member.mode & 0o7777:04o} ({odd})"
                    )
                )
        if member.type is MemberType.SYMLINK and self._policy.container == "zip":
            out.append(
                rules.ZIP_SYMLINK.finding(
                    location,
                    f"zip member {member.name!r} is a symbolic link to {member.link_target!r}: unzip creates the "
                    "link, Python's zipfile writes a file holding the target path",
                )
            )
            return out
        out += self._link_findings(member, location)
        return out

    def _link_findings(self, member: Member, location: str) -> list[Finding]:
        is_link = member.type in _LINK_TYPES
        if not is_link and not (self._policy.extracted and self._symlinks):
            return []  # only extraction through an earlier symlink puts a plain member elsewhere
        parts = _parts(member.name)
        is_symlink = member.type is MemberType.SYMLINK
        placed = self._resolve_quietly(parts[:-1] if is_symlink else parts, [])
        out = []
        if placed is None and self._policy.extracted and _lexically_inside(parts) and not _is_absolute(member.name):
            out.append(
                rules.WRITE_THROUGH_LINK.finding(
                    location,
                    f"member {member.name!r} is written through an earlier link member that points outside the "
                    "archive: extraction writes it outside the target directory",
                )
            )
        if not is_link:
            return out
        kind = "symbolic link" if is_symlink else "hard link"
        target = member.link_target
        base = (placed if placed is not None else parts[:-1]) if is_symlink else []  # hard links name archive paths
        loops = False
        if _is_absolute(target):
            escapes = True
        else:
            try:
                escapes = self._resolve(_parts(target), base) is None
            except _LinkLoop:
                escapes, loops = False, True
        if is_symlink and placed is not None and parts and not _is_absolute(member.name):
            self._symlinks[(*placed, parts[-1])] = target  # keyed by where it really lands
        if escapes:
            message = f"{kind} {member.name!r} -> {target!r} points outside the archive root"
            out.append(rules.LINK_ESCAPES.finding(location, message))
        else:
            how = "loops back on itself" if loops else "stays inside the archive"
            message = f"{kind} {member.name!r} -> {target!r} {how}; models never need links"
            out.append(rules.LINK_INSIDE.finding(location, message))
        return out

    def _resolve_quietly(self, parts: list[str], base: list[str]) -> list[str] | None:
        try:
            return self._resolve(parts, base)
        except _LinkLoop:
            return None

    def _resolve(self, parts: list[str], base: list[str], hops: int = 0) -> list[str] | None:
        """Resolve ``parts`` relative to ``base`` through earlier symlinks; None when it leaves the root."""
        stack = list(base)
        for part in parts:
            if part == "..":
                if not stack:
                    return None
                stack.pop()
                continue
            stack.append(part)
            target = self._symlinks.get(tuple(stack))
            if target is None:
                continue
            if hops >= _MAX_LINK_HOPS:
                raise _LinkLoop
            if _is_absolute(target):
                return None
            resolved = self._resolve(_parts(target), stack[:-1], hops + 1)
            if resolved is None:
                return None
            stack = resolved
        return stack


def _copy(copy: tuple[str, str, str]) -> str:
    _name, location, where = copy
    return f"{location}, {where}" if where else location


def _collision(names: list[str]) -> str:
    """Why different names land on the same file."""
    slashes = {"/".join(_parts(n)) for n in names}
    if len(slashes) == 1:
        same_on_posix = {"/".join(p for p in n.split("/") if p not in ("", ".")) for n in names}
        if len(same_on_posix) == 1:
            return "name the same path once './' and empty components are dropped"
        return "name the same path on Windows, where '\\' separates directories"
    return "differ only in letter case or Unicode form: they collide on case-insensitive file systems (Windows, macOS)"


class _LinkLoop(Exception):
    pass


def _lexically_inside(parts: list[str]) -> bool:
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return False
    return True


_ODD_MODE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH


def _odd_mode(mode: int) -> str:
    if not mode & _ODD_MODE_BITS:
        return ""
    bits = []
    if mode & stat.S_ISUID:
        bits.append("setuid")
    if mode & stat.S_ISGID:
        bits.append("setgid")
    if mode & stat.S_ISVTX:
        bits.append("sticky")
    if mode & stat.S_IWOTH:
        bits.append("world-writable")
    return ", ".join(bits)
