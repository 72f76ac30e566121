"""Content kinds and magic-byte sniffing.

Routing is by content: ``sniff`` looks at the first bytes of a stream and
decides its ``Kind``. A name is only consulted for formats that carry no magic
(protobuf files, YAML, Python source), where it selects the schema that a
structural check then confirms. ``EXPECTED_KINDS`` lists what an extension
promises, so the walker can report a mismatch.
"""

from __future__ import annotations

import enum
import io
import pickletools
import re
import struct

from .records import NamedTuple

SNIFF_BYTES = 4096
"""How many leading bytes ``sniff`` needs; HDF5 superblocks at 512/1024/2048 fit (the walker probes
the later powers of two itself, see ``hdf5_superblock_offsets``)."""


class Kind(enum.Enum):
    """What a byte stream is, by its content."""

    ZIP = "zip"
    TAR = "tar"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    LZMA = "lzma"
    JOBLIB_ZF = "joblib-zf"  # joblib's old compatibility format: "ZF", a hex length, then a zlib stream
    ZLIB = "zlib"
    ZSTD = "zstd"
    LZ4 = "lz4"
    SEVENZIP = "7z"
    PICKLE = "pickle"
    NUMPY = "numpy"
    HDF5 = "hdf5"
    SAVEDMODEL = "savedmodel"  # saved_model.pb / saved_model.pbtxt
    KERAS_METADATA = "keras_metadata"  # keras_metadata.pb (Keras 2 SavedModel)
    ONNX = "onnx"
    GGUF = "gguf"
    SAFETENSORS = "safetensors"
    MSGPACK = "msgpack"  # by name only (.msgpack: Flax weights); the analyzer checks the structure
    JSON = "json"
    YAML = "yaml"
    PYTHON = "python"
    TEXT = "text"  # other text, e.g. requirements.txt, templates; analyzers may still read it
    EXECUTABLE = "executable"  # ELF, PE, Mach-O, shell script
    UNKNOWN = "unknown"  # raw bytes with no recognisable format (weights blobs, images)


# Kinds that are plain data when no analyzer claims them: never a finding on their own.
DATA_KINDS = frozenset({Kind.UNKNOWN, Kind.TEXT})
# Kinds ``sniff`` picks from the name alone (no magic bytes): the content was not checked.
NAME_ONLY_KINDS = frozenset({Kind.SAVEDMODEL, Kind.KERAS_METADATA, Kind.MSGPACK, Kind.YAML, Kind.PYTHON})

_ELF = b"\x7fELF"
_MACHO = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5 = HDF5_SIGNATURE
_PICKLE_PROTO_OPS = frozenset(range(2, 6))
# Opcodes a protocol 0/1 pickle can start with: MARK, GLOBAL, EMPTY_LIST/DICT/TUPLE, INT, LONG,
# STRING, UNICODE, NONE, BININT*, BINSTRING, BINUNICODE, FLOAT, BINFLOAT, PERSID, BINPERSID.
_PICKLE_P0_FIRST = frozenset(b"(c]})ILSVNJKMTUFGPQX")

PICKLE_START_BYTES = frozenset(ord(op.code) for op in pickletools.opcodes) - {ord(".")}
"""Every opcode a pickle stream can start with (STOP excepted), as the unpicklers define them."""

_PROTOBUF_NAMES = {
    "saved_model.pb": Kind.SAVEDMODEL,
    "saved_model.pbtxt": Kind.SAVEDMODEL,
    "keras_metadata.pb": Kind.KERAS_METADATA,
}
_YAML_SUFFIXES = {".yaml", ".yml"}
_JSON_SUFFIXES = {".json"}
_YAML_NAMES = {"MLmodel"}

EXPECTED_KINDS: dict[str, frozenset[Kind]] = {
    ".pt": frozenset({Kind.ZIP, Kind.PICKLE, Kind.TAR}),
    ".pth": frozenset({Kind.ZIP, Kind.PICKLE, Kind.TAR}),
    ".ckpt": frozenset({Kind.ZIP, Kind.PICKLE, Kind.TAR}),
    ".bin": frozenset({Kind.ZIP, Kind.PICKLE, Kind.TAR, Kind.UNKNOWN}),
    ".pkl": frozenset({Kind.PICKLE}),
    ".pickle": frozenset({Kind.PICKLE}),
    ".joblib": frozenset({Kind.PICKLE, Kind.ZLIB, Kind.GZIP, Kind.BZIP2, Kind.XZ, Kind.LZMA, Kind.LZ4, Kind.JOBLIB_ZF}),
    ".npy": frozenset({Kind.NUMPY}),
    ".npz": frozenset({Kind.ZIP}),
    ".safetensors": frozenset({Kind.SAFETENSORS}),
    ".gguf": frozenset({Kind.GGUF}),
    ".onnx": frozenset({Kind.ONNX}),
    ".h5": frozenset({Kind.HDF5}),
    ".hdf5": frozenset({Kind.HDF5}),
    ".keras": frozenset({Kind.ZIP, Kind.HDF5}),
    ".nemo": frozenset({Kind.TAR, Kind.GZIP}),
    ".json": frozenset({Kind.JSON}),
    ".zip": frozenset({Kind.ZIP}),
    ".mar": frozenset({Kind.ZIP}),
    ".tar": frozenset({Kind.TAR}),
    ".gz": frozenset({Kind.GZIP}),
    ".tgz": frozenset({Kind.GZIP}),
    ".7z": frozenset({Kind.SEVENZIP}),
    ".msgpack": frozenset({Kind.MSGPACK}),
}


# Extension/content pairs that break the table above by a widespread, harmless convention: still
# reported (MLG-CORE-006), at low severity, with the reason.
CONVENTIONAL_MISMATCHES: dict[tuple[str, Kind], str] = {
    (".tar", Kind.ZIP): (
        "PyTorch's tutorials save checkpoints as .tar; torch.save writes a zip and torch.load reads it "
        "whatever the name, while tar tools refuse it rather than extract anything"
    ),
}


def posix_name(path: str) -> str:
    """``PurePosixPath(path).name`` without building a path object (called per archive member)."""
    tail = path[path.rfind("/") + 1 :]
    if tail and tail != ".":  # the usual case: no trailing "/" or "/."
        return tail
    for part in reversed(path.split("/")):
        if part and part != ".":
            return part
    return ""


def posix_suffix(name: str) -> str:
    """``PurePosixPath(name).suffix`` of a base name (``posix_name``'s result)."""
    i = name.rfind(".")
    return name[i:] if 0 < i < len(name) - 1 else ""


def sniff(head: bytes, name: str = "") -> Kind:
    """The kind of a stream whose first ``SNIFF_BYTES`` bytes are ``head``.

    ``name`` is the member or file name; it is used only for formats without
    magic bytes.
    """
    base = posix_name(name.replace("\\", "/"))
    magic = _by_magic(head)
    if magic is not None:
        return magic
    if base in _PROTOBUF_NAMES:
        return _PROTOBUF_NAMES[base]
    if base.endswith(".onnx") and head[:1] == b"\x08":
        return Kind.ONNX
    if base.lower().endswith(".msgpack") and head:
        return Kind.MSGPACK
    if _looks_like_pickle(head):
        return Kind.PICKLE
    text = _as_text(head)
    if text is None:
        return Kind.UNKNOWN
    stripped = text.lstrip()
    suffix = posix_suffix(base).lower()
    if suffix in _YAML_SUFFIXES or base in _YAML_NAMES:
        return Kind.YAML
    if suffix == ".py":
        return Kind.PYTHON
    if stripped.startswith("#!"):
        return Kind.EXECUTABLE
    if suffix in _JSON_SUFFIXES or _json_window(stripped.lstrip("\ufeff"), whole=len(head) < SNIFF_BYTES):
        return Kind.JSON
    return Kind.TEXT


# Formats known by a magic at offset 0, keyed by its first two bytes (distinct for each of them).
_LEADING_MAGIC: dict[bytes, tuple[bytes, Kind]] = {
    magic[:2]: (magic, kind)
    for magic, kind in (
        (b"\x1f\x8b", Kind.GZIP),
        (b"\xfd7zXZ\x00", Kind.XZ),
        (b"\x28\xb5\x2f\xfd", Kind.ZSTD),
        (b"\x04\x22\x4d\x18", Kind.LZ4),
        (b"7z\xbc\xaf\x27\x1c", Kind.SEVENZIP),
        (b"\x93NUMPY", Kind.NUMPY),
        (b"GGUF", Kind.GGUF),
    )
}


def _by_magic(head: bytes) -> Kind | None:
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return Kind.ZIP
    if len(head) >= 262 and head[257:262] == b"ustar":
        return Kind.TAR
    leading = _LEADING_MAGIC.get(head[:2])
    if leading is not None and head.startswith(leading[0]):
        return leading[1]
    if head[:3] == b"BZh" and head[3:4].isdigit():
        return Kind.BZIP2
    if _HDF5 in head and any(head[off : off + 8] == _HDF5 for off in hdf5_superblock_offsets(len(head))):
        return Kind.HDF5
    if head[:4] == _ELF or head[:4] in _MACHO or head[:2] == b"MZ":
        return Kind.EXECUTABLE
    if _looks_like_safetensors(head):
        return Kind.SAFETENSORS
    if len(head) >= 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTO_OPS and _opcodes_decode(head):
        return Kind.PICKLE
    if _looks_like_zlib(head):
        return Kind.ZLIB
    if _looks_like_lzma_alone(head):
        return Kind.LZMA
    if joblib_zf_header(head) is not None:
        return Kind.JOBLIB_ZF
    if len(head) >= 512 and _tar_checksum_ok(head[:512]):
        return Kind.TAR  # pre-POSIX (v7) tar header without the "ustar" magic
    return None


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return 2 <= header_len <= 100_000_000 and head[8:9] == b"{"


def _opcodes_decode(head: bytes, needed: int = 8) -> bool:
    """A PROTO-prefixed head is a pickle when its first opcodes decode (or it reaches STOP).

    Raw tensor bytes that happen to start with ``\\x80\\x02``..``\\x05`` fail within a few
    opcodes. Only the first ``needed`` opcodes are required: joblib files carry raw
    array bytes inline after a few dozen opcodes, and those must still count as pickles.
    """
    count = 0
    seen: set[str] = set()
    try:
        for opcode, _arg, _pos in pickletools.genops(io.BytesIO(head)):
            count += 1
            seen.add(opcode.name)
            if opcode.name == "STOP" or count >= needed:
                return True
    except Exception:  # noqa: BLE001 - a decode error: not opcodes, unless a call was already decoded
        return _imports_and_calls(seen)
    return False


_NAME_OPS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST"})
_CALL_OPS = frozenset({"REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})


def _imports_and_calls(opcodes: set[str]) -> bool:
    """A prefix that looks up a name and calls it is a pickle even if it breaks or ends right after.

    Payloads followed by garbage or cut short still run in every loader (the "broken pickle"
    evasion); random bytes practically never decode into a name lookup and a call.
    """
    return bool(opcodes & _NAME_OPS) and bool(opcodes & _CALL_OPS)


def _looks_like_pickle(head: bytes) -> bool:
    """Protocol 0/1 pickles have no PROTO opcode: accept a head that decodes as opcodes.

    ``pickletools.genops`` only decodes opcodes and their arguments; it never
    builds objects or imports anything. A short stream must reach STOP; a long
    one must decode cleanly up to the end of the sniff window.
    """
    if not head or head[0] not in _PICKLE_P0_FIRST:
        return False
    stream = io.BytesIO(head)
    count = 0
    seen: set[str] = set()
    try:
        for opcode, _arg, _pos in pickletools.genops(stream):
            count += 1
            seen.add(opcode.name)
            if opcode.name == "STOP":
                return count >= 2
    except Exception:  # noqa: BLE001 - any decode error (incl. truncation) means "not a pickle head"...
        long_clean = len(head) >= SNIFF_BYTES and count >= 8 and stream.tell() >= len(head) - 64
        return long_clean or _imports_and_calls(seen)  # ...unless it already imported and called something
    return False


def _looks_like_zlib(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x78 and ((head[0] << 8) | head[1]) % 31 == 0


def _looks_like_lzma_alone(head: bytes) -> bool:
    """An .lzma "alone" header as liblzma's auto decoder (``lzma.open``, joblib) accepts it.

    Properties byte 0x5D (the only one joblib routes: its prefix is ``]\\x00\\x00``), a
    dictionary size of 2^n or 2^n + 2^(n-1) (liblzma's "picky" check, which also lets 0
    through), then the uncompressed size: -1 (unknown) or below 2^38.
    """
    if len(head) < 13 or head[0] != 0x5D:
        return False
    (dict_size, size) = struct.unpack("<IQ", head[1:13])
    d = (dict_size - 1) & 0xFFFFFFFF
    for shift in (2, 3, 4, 8, 16):
        d |= d >> shift
    if (d + 1) & 0xFFFFFFFF != dict_size and dict_size != 0xFFFFFFFF:
        return False
    return size == (1 << 64) - 1 or size < (1 << 38)


JOBLIB_ZF_PREFIX = b"ZF"
JOBLIB_ZF_LENGTH = 19  # len(hex(2**64)): joblib pads the hex length to this width


def joblib_zf_header(head: bytes) -> int | None:
    """Length of joblib's compatibility ("ZF") header when ``head`` starts with one, else None.

    ``joblib.numpy_pickle_compat.read_zfile``: ``ZF``, ``hex(len(data))`` left-justified to 19
    characters (parsed with ``int(x, 16)``), one optional space (older writers), then zlib data.
    """
    if head[:2] != JOBLIB_ZF_PREFIX or len(head) < 2 + JOBLIB_ZF_LENGTH:
        return None
    try:
        int(head[2 : 2 + JOBLIB_ZF_LENGTH].decode("ascii"), 16)
    except (UnicodeDecodeError, ValueError):
        return None
    length = 2 + JOBLIB_ZF_LENGTH
    return length + 1 if head[length : length + 1] == b" " else length


def hdf5_superblock_offsets(size: int) -> list[int]:
    """Where libhdf5 looks for the superblock signature: 0, then every power of two from 512 below ``size``."""
    offsets, off = [0], 512
    while off + 8 <= size:
        offsets.append(off)
        off *= 2
    return offsets


def _tar_checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\x00", 1)[0].strip()
    if not stored or not all(48 <= c <= 55 for c in stored):  # octal digits only
        return False
    computed = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    return int(stored, 8) == computed and block[:1] not in (b"\x00", b"")


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the end is fine
            return None
        text = head[: exc.start].decode("utf-8")
    if text.translate(_TEXT_CONTROLS).isprintable():  # the usual case, decided in C
        return text or None
    printable = sum(ch.isprintable() or ch in "\r\n\t\ufeff" for ch in text)  # a byte-order mark is text too
    return text if text and printable / len(text) > 0.95 else None


_TEXT_CONTROLS = dict.fromkeys(map(ord, "\r\n\t\ufeff"))  # characters text may hold that are not printable


# Where a window cut a JSON value short, the parser stops at the cut: "Expecting value" with only the start
# of a number or literal (true, false, null, NaN, Infinity) left, or another error with only blanks or
# the rest of a number (".", "e+") left.
_JSON_CUT_VALUE = re.compile(
    r"\s*(?:-?\d*(?:\.\d*)?(?:[eE][+-]?\d*)?|t(?:r(?:ue?)?)?|f(?:a(?:l(?:se?)?)?)?|n(?:u(?:ll?)?)?"
    r"|N(?:aN?)?|-?I(?:n(?:f(?:i(?:n(?:i(?:ty?)?)?)?)?)?)?)\Z"
)
_JSON_CUT_AFTER = re.compile(r"\s*\Z|(?:\.\d*)?(?:[eE][+-]?\d*)?\Z")


def _json_window(text: str, whole: bool) -> bool:
    """Whether ``text``, the start of a file without a JSON name, is JSON.

    It is when it parses (``whole``: the window holds the entire file) or, for a longer file, when
    the only error is the window ending: inside a string, inside a number or literal, or between
    tokens. A syntax error before the end (``[PAD]`` opening a WordPiece ``vocab.txt``, ``[INFO]``
    opening a log, ``{%`` opening a template) makes it text: a first ``[`` or ``{`` proves nothing.
    """
    if text[:1] not in ("{", "["):
        return False
    import json  # only a file starting like JSON needs the parser

    try:
        json.loads(text)
        return True
    except json.JSONDecodeError as exc:
        if whole:
            return False
        if exc.msg.startswith("Unterminated string"):  # raised only when the input ends inside a string
            return True
        rest = text[exc.pos :]
        if exc.msg.startswith("Invalid \\uXXXX escape"):
            return len(rest) < 6
        tail = _JSON_CUT_VALUE if exc.msg.startswith("Expecting value") else _JSON_CUT_AFTER
        return tail.match(rest) is not None
    except RecursionError:
        return not whole  # nesting deeper than Python's json goes; only a cut-off window can still be JSON


def expected_kinds(name: str) -> frozenset[Kind] | None:
    """Kinds a file name's extension promises, or None when the extension promises nothing."""
    return EXPECTED_KINDS.get(posix_suffix(posix_name(name.replace("\\", "/"))).lower())


# --- what a name promises (loader parity) -------------------------------------------------------
class Promise(NamedTuple):
    """What the loader a file name selects will do with the bytes.

    ``accepts``: kinds that loader reads; ``pickle_loader``: it unpickles whatever it does not
    recognise first (``torch.load``, ``joblib.load``, ``np.load`` fall back to ``pickle.load``);
    ``strict``: content that is none of ``accepts`` makes the scan incomplete (the model cannot be
    read as what it claims to be). ``.bin`` and ``.dat`` are not strict: see ``OPAQUE_SUFFIXES``.
    """

    label: str
    accepts: frozenset[Kind]
    pickle_loader: bool = False
    strict: bool = True


_TORCH_FIRST = frozenset({Kind.ZIP, Kind.TAR})  # torch.load: zip, then the legacy tar, then pickle
_JOBLIB_FIRST = frozenset({Kind.ZLIB, Kind.GZIP, Kind.BZIP2, Kind.XZ, Kind.LZMA, Kind.LZ4, Kind.JOBLIB_ZF})
_NUMPY_FIRST = frozenset({Kind.ZIP, Kind.NUMPY})  # np.load: zip (npz), the .npy magic, then pickle
OPAQUE_SUFFIXES = frozenset({".bin", ".dat"})
"""Names that do not promise one format. ``.bin`` and ``.dat`` hold many legitimate formats mlgate has
no parser for (CTranslate2, fastText and word2vec binaries, raw tensor dumps), so a strict promise
would quarantine them all; their content decides. They are still run through the pickle VM
(``torch.load`` and joblib read them as pickles), and bytes no analyzer reads get an info finding."""

PROMISES: dict[str, Promise] = {
    ".pkl": Promise("pickle", frozenset({Kind.PICKLE}), pickle_loader=True),
    ".pickle": Promise("pickle", frozenset({Kind.PICKLE}), pickle_loader=True),
    ".pt": Promise("PyTorch checkpoint", _TORCH_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".pth": Promise("PyTorch checkpoint", _TORCH_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".ckpt": Promise("PyTorch checkpoint", _TORCH_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".joblib": Promise("joblib file", _JOBLIB_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".npy": Promise("NumPy array", _NUMPY_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".npz": Promise("NumPy archive", _NUMPY_FIRST | {Kind.PICKLE}, pickle_loader=True),
    ".bin": Promise(
        "PyTorch checkpoint or raw weights", _TORCH_FIRST | {Kind.PICKLE}, pickle_loader=True, strict=False
    ),  # fmt: skip
    ".dat": Promise("pickle or raw data", frozenset({Kind.PICKLE}), pickle_loader=True, strict=False),
    ".h5": Promise("HDF5 file", frozenset({Kind.HDF5})),
    ".hdf5": Promise("HDF5 file", frozenset({Kind.HDF5})),
    ".keras": Promise("Keras archive", frozenset({Kind.ZIP, Kind.HDF5})),
    ".onnx": Promise("ONNX model", frozenset({Kind.ONNX})),
    ".safetensors": Promise("safetensors file", frozenset({Kind.SAFETENSORS})),
    ".gguf": Promise("GGUF file", frozenset({Kind.GGUF})),
    ".msgpack": Promise("msgpack (Flax) file", frozenset({Kind.MSGPACK})),
}
_NAMED_PROMISES: dict[str, Promise] = {
    "saved_model.pb": Promise("SavedModel", frozenset({Kind.SAVEDMODEL})),
}


def promise_for(name: str) -> Promise | None:
    """What loading a file of this name promises, or None when the name selects no loader."""
    base = posix_name(name.replace("\\", "/"))
    named = _NAMED_PROMISES.get(base)
    if named is not None:
        return named
    return PROMISES.get(posix_suffix(base).lower())


def conventional_mismatch(name: str, kind: Kind) -> str | None:
    """Why content of ``kind`` under this name is a known harmless convention, or None."""
    return CONVENTIONAL_MISMATCHES.get((posix_suffix(posix_name(name.replace("\\", "/"))).lower(), kind))
