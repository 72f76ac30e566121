"""What a dotted Python name can do: the capability catalogue for code a model ships or names.

Shared by the Python source analyzer (call sites in ``*.py`` files) and the
config analyzers (classes and modules a config makes the loader import). Names
are matched by dotted components, never by substring: ``os.system`` and
``posix.system`` are process spawning, ``os.path.join`` is nothing.
"""

from __future__ import annotations

import enum


class Capability(enum.Enum):
    """A side effect a call can have, in the words a finding uses."""

    PROCESS = "spawns a process"
    EXEC = "executes dynamically built code"
    NETWORK = "opens a network connection"
    FILES = "writes, moves or deletes files"
    IMPORT = "imports modules dynamically"
    NATIVE = "loads native code"
    REFLECTION = "reaches interpreter internals"


# Platform spellings of the same module: loaders import the alias, the effect is the same.
MODULE_ALIASES = {"posix": "os", "nt": "os", "__builtin__": "builtins", "_io": "io", "_pickle": "pickle"}

_OS_PROCESS = (
    "system popen fork forkpty posix_spawn posix_spawnp kill killpg "
    "execl execle execlp execlpe execv execve execvp execvpe "
    "spawnl spawnle spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe startfile"
)
_OS_FILES = (
    "remove unlink rmdir removedirs rename renames replace chmod chown lchown symlink link truncate mkfifo mknod"
)

# Exact dotted names.
CALLS: dict[str, Capability] = {
    **{f"os.{name}": Capability.PROCESS for name in _OS_PROCESS.split()},
    **{f"os.{name}": Capability.FILES for name in _OS_FILES.split()},
    "asyncio.create_subprocess_shell": Capability.PROCESS,
    "asyncio.create_subprocess_exec": Capability.PROCESS,
    "uuid._get_command_stdout": Capability.PROCESS,
    "pydoc.pipepager": Capability.PROCESS,
    "builtins.exec": Capability.EXEC,
    "builtins.eval": Capability.EXEC,
    "builtins.compile": Capability.EXEC,
    "builtins.execfile": Capability.EXEC,
    "marshal.loads": Capability.EXEC,
    "pickle.loads": Capability.EXEC,
    "dill.loads": Capability.EXEC,
    "cloudpickle.loads": Capability.EXEC,
    "types.FunctionType": Capability.EXEC,
    "types.CodeType": Capability.EXEC,
    "timeit.timeit": Capability.EXEC,
    "timeit.repeat": Capability.EXEC,
    "cProfile.run": Capability.EXEC,
    "profile.run": Capability.EXEC,
    "builtins.__import__": Capability.IMPORT,
    "importlib.import_module": Capability.IMPORT,
    "importlib.__import__": Capability.IMPORT,
    "importlib.reload": Capability.IMPORT,
    "importlib.util.spec_from_file_location": Capability.IMPORT,
    "importlib.util.module_from_spec": Capability.IMPORT,
    "importlib.machinery.SourceFileLoader": Capability.IMPORT,
    "importlib.machinery.SourcelessFileLoader": Capability.IMPORT,
    "imp.load_source": Capability.IMPORT,
    "imp.load_module": Capability.IMPORT,
    "imp.load_compiled": Capability.IMPORT,
    "pkgutil.resolve_name": Capability.IMPORT,
    "pydoc.locate": Capability.IMPORT,
    "zipimport.zipimporter": Capability.IMPORT,
    "torch.ops.load_library": Capability.NATIVE,
    "torch.classes.load_library": Capability.NATIVE,
    "torch.utils.cpp_extension.load": Capability.NATIVE,
    "torch.utils.cpp_extension.load_inline": Capability.NATIVE,
    "numpy.ctypeslib.load_library": Capability.NATIVE,
    "sys.addaudithook": Capability.REFLECTION,
    "sys.settrace": Capability.REFLECTION,
    "sys.setprofile": Capability.REFLECTION,
    "gc.get_objects": Capability.REFLECTION,
    "gc.get_referrers": Capability.REFLECTION,
    "shutil.rmtree": Capability.FILES,
    "shutil.move": Capability.FILES,
    "shutil.copy": Capability.FILES,
    "shutil.copy2": Capability.FILES,
    "shutil.copyfile": Capability.FILES,
    "shutil.copytree": Capability.FILES,
    "shutil.chown": Capability.FILES,
    "shutil.unpack_archive": Capability.FILES,
}

# Every name under these modules has the capability.
MODULES: dict[str, Capability] = {
    "subprocess": Capability.PROCESS,
    "_posixsubprocess": Capability.PROCESS,
    "pty": Capability.PROCESS,
    "commands": Capability.PROCESS,
    "runpy": Capability.EXEC,
    "code": Capability.EXEC,
    "codeop": Capability.EXEC,
    "socket": Capability.NETWORK,
    "_socket": Capability.NETWORK,
    "ssl": Capability.NETWORK,
    "http.client": Capability.NETWORK,
    "http.server": Capability.NETWORK,
    "httplib": Capability.NETWORK,
    "urllib.request": Capability.NETWORK,
    "urllib2": Capability.NETWORK,
    "urllib3": Capability.NETWORK,
    "requests": Capability.NETWORK,
    "httpx": Capability.NETWORK,
    "aiohttp": Capability.NETWORK,
    "ftplib": Capability.NETWORK,
    "smtplib": Capability.NETWORK,
    "imaplib": Capability.NETWORK,
    "poplib": Capability.NETWORK,
    "telnetlib": Capability.NETWORK,
    "nntplib": Capability.NETWORK,
    "socketserver": Capability.NETWORK,
    "xmlrpc": Capability.NETWORK,
    "paramiko": Capability.NETWORK,
    "websocket": Capability.NETWORK,
    "websockets": Capability.NETWORK,
    "webbrowser": Capability.NETWORK,
    "ctypes": Capability.NATIVE,
    "_ctypes": Capability.NATIVE,
    "cffi": Capability.NATIVE,
}

# Modules whose import alone, named by a config, is a way to run a command or code.
DANGEROUS_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "_posixsubprocess",
        "pty",
        "builtins",
        "__builtin__",
        "runpy",
        "code",
        "codeop",
        "importlib",
        "pickle",
        "_pickle",
        "marshal",
        "dill",
        "cloudpickle",
        "socket",
        "ctypes",
        "shutil",
        "sys",
        "webbrowser",
        "pydoc",
        "timeit",
        "commands",
        "types",
        "operator",
        "functools",
        "asyncio",
        "multiprocessing",
    }
)

# Calls that turn an encoded or compressed string back into text or bytes.
DECODERS = frozenset(
    {
        "base64.b64decode",
        "base64.b32decode",
        "base64.b16decode",
        "base64.a85decode",
        "base64.b85decode",
        "base64.decodebytes",
        "base64.decodestring",
        "base64.urlsafe_b64decode",
        "base64.standard_b64decode",
        "binascii.a2b_base64",
        "binascii.a2b_hex",
        "binascii.unhexlify",
        "binascii.a2b_uu",
        "codecs.decode",
        "zlib.decompress",
        "gzip.decompress",
        "bz2.decompress",
        "lzma.decompress",
        "builtins.bytes.fromhex",
        "builtins.bytearray.fromhex",
        "builtins.chr",
        "marshal.loads",
        "pickle.loads",
    }
)


def canonical(name: str) -> str:
    """``name`` with platform module aliases folded (``posix.system`` -> ``os.system``)."""
    head, _, rest = name.partition(".")
    head = MODULE_ALIASES.get(head, head)
    return f"{head}.{rest}" if rest else head


def parents(name: str) -> list[str]:
    """``a.b.c`` -> ``["a.b.c", "a.b", "a"]`` (longest first)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def capability(name: str) -> Capability | None:
    """The capability of calling the dotted ``name``, or None when it is not in the catalogue."""
    name = canonical(name)
    if name in CALLS:
        return CALLS[name]
    for prefix in parents(name):
        if prefix in MODULES:
            return MODULES[prefix]
    return None


def is_dangerous_module(name: str) -> bool:
    """True when the dotted ``name`` lives in a module that runs commands or code (``os``, ``subprocess``...)."""
    name = canonical(name)
    return capability(name) in (Capability.PROCESS, Capability.EXEC) or any(
        prefix in DANGEROUS_MODULES for prefix in parents(name)
    )


def under(name: str, prefixes: frozenset[str] | tuple[str, ...]) -> bool:
    """True when dotted ``name`` is one of ``prefixes`` or inside one (component-wise: ``nemo.x`` is under ``nemo``)."""
    return any(p in prefixes for p in parents(name))
