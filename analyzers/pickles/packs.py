"""Pickle global policy data: allowlist packs, denied categories, aliases, special behaviours.

Three tiers (docs/rules.md, Pickle): a global is *allowed* when a pack below lists
it (every entry says why it is safe), *denied* when a category below lists it
(the category sets severity and explains the danger), and *unknown* otherwise.
Packs are grouped per library. Every allow entry names what it allows: an
``Allow`` lists exact qualnames of one module; a ``Pattern`` is an explicit,
reasoned pattern (module globs plus a regular expression over undotted names,
class-shaped by default) for families of classes such as every ``torch.nn``
layer. There are no whole-subtree allowances: a re-exported helper in a module
full of classes is not allowed by the classes' entry. ``tools/pack_audit.py``
imports every name the packs allow in the installed libraries and reads its
source; its report (``pack_audit.md`` next to this file) must show no
unjustified entry. Deny entries without names cover the module and all its
submodules; ``DENIED_PATTERNS`` deny a name wherever a library vendors it.

This module is data only; ``names`` builds the lookup from it.
"""

from __future__ import annotations

import enum

from ..core.findings import Rule, Severity
from ..core.records import NamedTuple

ANALYZER = "pickle"


class Category(enum.Enum):
    """Why a denied global is dangerous; each category is one rule."""

    EXEC = "exec/eval"
    PROCESS = "process execution"
    HIDDEN_SHELL = "stdlib helper that runs a shell command"
    EXEC_STRING = "helper that executes a string as code"
    DYNAMIC = "dynamic name resolution"
    NESTED = "nested deserialisation or loader of another file"
    FILESYSTEM = "file system access"
    NETWORK = "network access"
    FFI = "native code or interpreter internals"
    SCANNER = "scanner interference"


CATEGORY_RULES: dict[Category, Rule] = {
    Category.EXEC: Rule("MLG-PKL-001", Severity.CRITICAL, "Pickle calls exec/eval/compile or builds code", ANALYZER),
    Category.PROCESS: Rule("MLG-PKL-002", Severity.CRITICAL, "Pickle starts processes or threads", ANALYZER),
    Category.HIDDEN_SHELL: Rule(
        "MLG-PKL-003", Severity.CRITICAL, "Pickle calls a library helper that runs a shell command", ANALYZER
    ),
    Category.EXEC_STRING: Rule(
        "MLG-PKL-004", Severity.CRITICAL, "Pickle calls a helper that executes a string as code", ANALYZER
    ),
    Category.DYNAMIC: Rule(
        "MLG-PKL-005", Severity.HIGH, "Pickle resolves names at load time (getattr, import, attrgetter)", ANALYZER
    ),
    Category.NESTED: Rule(
        "MLG-PKL-006", Severity.CRITICAL, "Pickle deserialises nested data or loads another file", ANALYZER
    ),
    Category.FILESYSTEM: Rule("MLG-PKL-007", Severity.HIGH, "Pickle touches the file system", ANALYZER),
    Category.NETWORK: Rule("MLG-PKL-008", Severity.HIGH, "Pickle opens network connections", ANALYZER),
    Category.FFI: Rule(
        "MLG-PKL-009", Severity.CRITICAL, "Pickle reaches native code or interpreter internals", ANALYZER
    ),
    Category.SCANNER: Rule("MLG-PKL-010", Severity.CRITICAL, "Pickle references a model scanner", ANALYZER),
}


class Allow(NamedTuple):
    """Allowed globals: the exact qualnames ``names`` of ``module``."""

    module: str
    names: tuple[str, ...]
    reason: str


CLASS = r"_?[A-Z][A-Za-z0-9]*"
"""Class-shaped names (``Linear``, ``LSTM``, ``_BatchNorm``): no underscores inside, so no CONSTANT_NAMES, and
no lowercase functions (the re-exported helpers that subtree allowances used to let through)."""


class Pattern(NamedTuple):
    """Allowed globals by an explicit pattern: modules matching one of the space-separated globs ``modules``
    (``fnmatch``; ``*`` spans dots) and none of ``exclude``, and undotted names fully matching ``names``."""

    modules: str
    names: str
    reason: str
    exclude: str = ""


class Deny(NamedTuple):
    """Denied globals: ``names`` in ``module`` (or, with no names, the module and submodules)."""

    module: str
    names: tuple[str, ...] | None
    category: Category
    note: str = ""


class Pack(NamedTuple):
    """The allowlist entries one library's pickles need."""

    library: str
    entries: tuple[Allow | Pattern, ...]


def _n(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class Behaviour(enum.Enum):
    """Call semantics the analyzer models for specific callables."""

    GETATTR = "getattr"  # getattr(obj, name): a new global obj.name
    ATTRGETTER = "attrgetter"  # attrgetter(name)(obj) / methodcaller(name, ...)(obj)
    IMPORT = "import"  # __import__(name) / import_module(name): the module object
    RESOLVE = "resolve"  # resolve_name('m:a') / locate('m.a') / _ufunc_reconstruct(m, a) / _builtin_type(a)
    PARTIAL = "partial"  # partial(func, *args): calling the result calls func
    RECONSTRUCTOR = "reconstructor"  # copyreg._reconstructor(cls, base, state): instance of cls, base.__init__
    NEWOBJ = "newobj"  # copyreg.__newobj__(cls, *args) / Cython newObj(cls): instance of cls
    NESTED = "nested"  # deserialises bytes it is given (pickle.loads...): scan them
    LOADER = "loader"  # loads another file (torch.load, numpy.load...): scan bytes given, else a path
    DECODE = "decode"  # pure bytes transform (base64, hex, zlib...), evaluated on literals
    BYTES_IO = "bytes_io"  # io.BytesIO(b): a file over literal bytes
    CODE = "code"  # builds a code object from fields (CodeType, cloudpickle, dill)
    FUNCTION = "function"  # builds a function from a code object
    MARSHAL = "marshal"  # marshal.loads(bytes): a code object
    ARRAY_WRAPPER = "array_wrapper"  # joblib NumpyArrayWrapper: array bytes follow its BUILD inline
    EXTENSION = "extension"  # copyreg.add_extension(module, name, code): registers an EXT code
    FX_CODE = "fx_code"  # torch.fx reduce_graph_module(body, import_block): runs body["_code"] (checked by fx_code)


# --- module aliases -----------------------------------------------------------------------------
# Names that import the same module (C accelerators, Python 2 names, platform modules). Pickles
# name them to dodge denylists; everything is matched on the canonical name.
ALIASES: dict[str, str] = {
    "posix": "os",
    "nt": "os",
    "__builtin__": "builtins",
    "exceptions": "builtins",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_compat_pickle": "pickle",
    "_operator": "operator",
    "_io": "io",
    "_pyio": "io",
    "_codecs": "codecs",
    "copy_reg": "copyreg",
    "_functools": "functools",
    "_collections": "collections",
    "_socket": "socket",
    "_ssl": "ssl",
    "thread": "_thread",
    "commands": "subprocess",
    "popen2": "subprocess",
    "_signal": "signal",
    "_datetime": "datetime",
    "_pydatetime": "datetime",
    "_decimal": "decimal",
    "_pydecimal": "decimal",
    "_sre": "re",
    "sre_compile": "re",
    "_marshal": "marshal",
    "_imp": "importlib",
    "imp": "importlib",
    "_frozen_importlib": "importlib",
    "_frozen_importlib_external": "importlib",
    "_weakref": "weakref",
    "_xxsubinterpreters": "_interpreters",
    "urllib2": "urllib.request",
    "httplib": "http.client",
    "cookielib": "http.cookiejar",
    "SocketServer": "socketserver",
    "__main__": "__main__",
}

# --- denied categories --------------------------------------------------------------------------
C = Category
DENIED: tuple[Deny, ...] = (
    # exec/eval and code objects
    Deny("builtins", _n("eval exec compile execfile apply __import__ input breakpoint __build_class__"), C.EXEC),
    Deny("types", _n("CodeType FunctionType LambdaType MethodType"), C.EXEC),
    Deny("marshal", None, C.EXEC),
    Deny("codeop", None, C.EXEC),
    Deny("code", None, C.EXEC),
    Deny("runpy", None, C.EXEC),
    Deny("importlib.util", _n("exec_module"), C.EXEC),
    # processes, threads, signals
    Deny("os", None, C.PROCESS),
    Deny("subprocess", None, C.PROCESS),
    Deny("_posixsubprocess", None, C.PROCESS),
    Deny("_winapi", None, C.PROCESS),
    Deny("pty", None, C.PROCESS),
    Deny("multiprocessing", None, C.PROCESS),
    Deny("concurrent", None, C.PROCESS),
    Deny("asyncio", None, C.PROCESS, "asyncio.unix_events._UnixSubprocessTransport runs commands (CVE-2025-10157)"),
    Deny("threading", None, C.PROCESS),
    Deny("_thread", None, C.PROCESS),
    Deny("signal", None, C.PROCESS),
    Deny("atexit", None, C.PROCESS),
    Deny("sched", None, C.PROCESS),
    Deny("torch.multiprocessing", None, C.PROCESS),
    Deny("joblib.parallel", None, C.PROCESS),
    # stdlib and library helpers that run shell commands
    Deny(
        "uuid",
        _n(
            "_get_command_stdout _popen _ifconfig_getnode _ip_getnode _arp_getnode _lanscan_getnode "
            "_netstat_getnode _netbios_getnode _unix_getnode getnode"
        ),
        C.HIDDEN_SHELL,
    ),
    Deny("_osx_support", None, C.HIDDEN_SHELL),
    Deny("_aix_support", None, C.HIDDEN_SHELL),
    Deny("platform", _n("_syscmd_ver _syscmd_file popen architecture"), C.HIDDEN_SHELL),
    Deny("ctypes.util", None, C.HIDDEN_SHELL),
    Deny("imaplib", _n("IMAP4_stream"), C.HIDDEN_SHELL),
    Deny("pydoc", _n("pipepager pager tempfilepager getpager plainpager ttypager"), C.HIDDEN_SHELL),
    Deny("_pyrepl", None, C.HIDDEN_SHELL),
    Deny("test", None, C.HIDDEN_SHELL, "test.support.script_helper runs interpreters"),
    Deny("venv", None, C.HIDDEN_SHELL),
    Deny("ensurepip", None, C.HIDDEN_SHELL),
    Deny("pip", None, C.HIDDEN_SHELL, "pip.main installs packages (CVE-2025-1716)"),
    Deny("pipes", None, C.HIDDEN_SHELL),
    Deny("webbrowser", None, C.HIDDEN_SHELL),
    Deny("antigravity", None, C.HIDDEN_SHELL),
    Deny("torch._inductor", None, C.HIDDEN_SHELL, "codecache compiles and loads native code"),
    Deny("torch.utils.collect_env", None, C.HIDDEN_SHELL),
    Deny("torch.utils.cpp_extension", None, C.HIDDEN_SHELL, "compiles and loads C++ extensions"),
    Deny("numpy.distutils", None, C.HIDDEN_SHELL),
    # helpers that execute a string as code
    Deny("timeit", None, C.EXEC_STRING),
    Deny("cProfile", None, C.EXEC_STRING),
    Deny("profile", None, C.EXEC_STRING),
    Deny("trace", None, C.EXEC_STRING),
    Deny("pdb", None, C.EXEC_STRING),
    Deny("bdb", None, C.EXEC_STRING),
    Deny("doctest", None, C.EXEC_STRING),
    Deny("idlelib", None, C.EXEC_STRING),
    Deny("lib2to3", None, C.EXEC_STRING),
    Deny("rlcompleter", None, C.EXEC_STRING),
    Deny("logging.config", None, C.EXEC_STRING, "fileConfig/listen evaluate configuration as code"),
    Deny("numpy.testing", None, C.EXEC_STRING),
    Deny("numpy.f2py", None, C.EXEC_STRING),
    Deny("torch.jit.unsupported_tensor_ops", None, C.EXEC_STRING),
    Deny("torch._dynamo", None, C.EXEC_STRING),
    Deny("torch.fx.experimental.symbolic_shapes", None, C.EXEC_STRING),
    Deny("torch.utils.bottleneck", None, C.EXEC_STRING),
    Deny("torch.jit.annotations", None, C.EXEC_STRING, "CVE-2022-45907"),
    Deny("torch.jit.frontend", None, C.EXEC_STRING),
    Deny("torch.package", None, C.EXEC_STRING),
    Deny("_pydev_bundle", None, C.EXEC_STRING),
    Deny("_pydevd_bundle", None, C.EXEC_STRING),
    Deny("IPython", None, C.EXEC_STRING),
    Deny("jinja2", None, C.EXEC_STRING),
    Deny("setuptools", None, C.EXEC_STRING, "setuptools.sandbox.run_setup executes a setup script"),
    # dynamic name resolution
    Deny("builtins", _n("getattr setattr delattr globals locals vars hasattr"), C.DYNAMIC),
    Deny("importlib", None, C.DYNAMIC),
    Deny("pkgutil", None, C.DYNAMIC, "pkgutil.resolve_name resolves any dotted name"),
    Deny("pydoc", _n("locate"), C.DYNAMIC),
    Deny("zipimport", None, C.DYNAMIC),
    Deny("operator", _n("attrgetter itemgetter methodcaller"), C.DYNAMIC),
    Deny("functools", _n("reduce"), C.DYNAMIC),
    Deny("inspect", None, C.DYNAMIC),
    Deny("gc", None, C.DYNAMIC),
    Deny("_interpreters", None, C.DYNAMIC),
    Deny("copyreg", _n("add_extension remove_extension clear_extension_cache"), C.DYNAMIC),
    Deny("torch._ops", None, C.DYNAMIC),
    Deny("torch.hub", None, C.NESTED),
    # nested deserialisation and loaders of other files
    Deny("pickle", None, C.NESTED),
    Deny("pickletools", None, C.NESTED),
    Deny("shelve", None, C.NESTED),
    Deny("dill", _n("load loads load_session load_module"), C.NESTED),
    Deny("dill._dill", _n("load loads load_session load_module _load"), C.NESTED),
    Deny("cloudpickle", _n("load loads"), C.NESTED),
    Deny("cloudpickle.cloudpickle", _n("load loads"), C.NESTED),
    Deny("joblib", _n("load"), C.NESTED),
    Deny("joblib.numpy_pickle", _n("load _unpickle"), C.NESTED),
    Deny(
        "numpy", _n("load loadtxt genfromtxt fromfile fromregex memmap save savez savez_compressed savetxt"), C.NESTED
    ),
    Deny("numpy.lib.npyio", None, C.NESTED),
    Deny("numpy.lib.format", _n("read_array open_memmap write_array"), C.NESTED),
    Deny("numpy.lib._npyio_impl", None, C.NESTED),
    Deny(
        "pandas",
        _n(
            "read_pickle read_csv read_parquet read_feather read_hdf read_json read_excel read_sql "
            "read_table read_html read_xml read_orc read_stata read_sas read_spss read_fwf "
            "read_clipboard read_gbq"
        ),
        C.NESTED,
    ),
    Deny("pandas.io", None, C.NESTED),
    Deny("torch", _n("load"), C.NESTED),
    Deny("torch.serialization", _n("load _load _legacy_load"), C.NESTED),
    Deny("torch.storage", _n("_load_from_bytes"), C.NESTED),
    Deny("torch.jit", _n("load"), C.NESTED),
    Deny("torch.jit._serialization", None, C.NESTED),
    Deny("torch.utils._config_module", None, C.NESTED, "ConfigModule.load_config unpickles its argument"),
    Deny("torch.utils.data.datapipes.utils.decoder", None, C.NESTED),
    Deny("torch.utils.model_zoo", None, C.NESTED),
    Deny("torch.distributed", None, C.NETWORK, "torch.distributed.rpc (CVE-2024-5480), remote_module (CVE-2024-48063)"),
    Deny("keras", _n("models.load_model utils.get_file config.enable_unsafe_deserialization"), C.NESTED),
    Deny("keras.models", _n("load_model"), C.NESTED),
    Deny("keras.saving", None, C.NESTED),
    Deny("keras.src.saving", None, C.NESTED),
    Deny("keras.utils", _n("get_file"), C.NESTED),
    Deny("keras.config", _n("enable_unsafe_deserialization"), C.NESTED),
    Deny("keras.layers", _n("TorchModuleWrapper"), C.NESTED),
    Deny("tensorflow", None, C.NESTED, "TensorFlow reads and runs graphs and files"),
    Deny("transformers.dynamic_module_utils", None, C.NESTED, "imports remote code"),
    Deny("huggingface_hub", None, C.NETWORK),
    Deny("datasets", _n("load_dataset load_from_disk"), C.NESTED),
    Deny("yaml", _n("load unsafe_load full_load load_all unsafe_load_all full_load_all"), C.NESTED),
    Deny("jsonpickle", None, C.NESTED),
    Deny("xml.dom.pulldom", None, C.NESTED),
    # file system
    Deny("builtins", _n("open"), C.FILESYSTEM),
    Deny("io", _n("open open_code FileIO BufferedReader BufferedWriter BufferedRandom TextIOWrapper"), C.FILESYSTEM),
    Deny("shutil", None, C.FILESYSTEM),
    Deny("tempfile", None, C.FILESYSTEM),
    Deny(
        "pathlib",
        _n(
            "Path.write_text Path.write_bytes Path.unlink Path.rename Path.replace Path.symlink_to "
            "Path.hardlink_to Path.touch Path.mkdir Path.rmdir Path.chmod Path.open Path.read_text "
            "Path.read_bytes PosixPath.write_text PosixPath.write_bytes PosixPath.unlink "
            "PosixPath.rename PosixPath.open PosixPath.touch PosixPath.symlink_to "
            "WindowsPath.write_text WindowsPath.write_bytes WindowsPath.open"
        ),
        C.FILESYSTEM,
    ),
    Deny("distutils", None, C.FILESYSTEM),
    Deny(
        "logging",
        _n("FileHandler RotatingFileHandler TimedRotatingFileHandler WatchedFileHandler basicConfig"),
        C.FILESYSTEM,
    ),
    Deny("logging.handlers", None, C.FILESYSTEM),
    Deny("zipfile", None, C.FILESYSTEM),
    Deny("tarfile", None, C.FILESYSTEM),
    Deny("glob", None, C.FILESYSTEM),
    Deny("fileinput", None, C.FILESYSTEM),
    Deny("linecache", None, C.FILESYSTEM),
    Deny("mmap", None, C.FILESYSTEM),
    Deny("sqlite3", None, C.FILESYSTEM),
    Deny("dbm", None, C.FILESYSTEM),
    Deny("compileall", None, C.FILESYSTEM),
    Deny("py_compile", None, C.FILESYSTEM),
    Deny("filecmp", None, C.FILESYSTEM),
    Deny("fcntl", None, C.FILESYSTEM),
    Deny("smart_open", None, C.FILESYSTEM),
    Deny("fsspec", None, C.FILESYSTEM),
    # network
    Deny("socket", None, C.NETWORK),
    Deny("ssl", None, C.NETWORK, "ssl.get_server_certificate leaks data through DNS"),
    Deny("select", None, C.NETWORK),
    Deny("selectors", None, C.NETWORK),
    Deny("http", None, C.NETWORK),
    Deny("urllib.request", None, C.NETWORK),
    Deny("urllib.robotparser", None, C.NETWORK),
    Deny("requests", None, C.NETWORK),
    Deny("aiohttp", None, C.NETWORK),
    Deny("httpx", None, C.NETWORK),
    Deny("urllib3", None, C.NETWORK),
    Deny("smtplib", None, C.NETWORK),
    Deny("imaplib", None, C.NETWORK),
    Deny("ftplib", None, C.NETWORK),
    Deny("poplib", None, C.NETWORK),
    Deny("telnetlib", None, C.NETWORK),
    Deny("nntplib", None, C.NETWORK),
    Deny("socketserver", None, C.NETWORK),
    Deny("xmlrpc", None, C.NETWORK),
    Deny("paramiko", None, C.NETWORK),
    Deny("boto3", None, C.NETWORK),
    Deny("botocore", None, C.NETWORK),
    # native code and interpreter internals
    Deny("ctypes", None, C.FFI),
    Deny("_ctypes", None, C.FFI),
    Deny("cffi", None, C.FFI),
    Deny("sys", None, C.FFI),
    Deny("builtins", _n("memoryview"), C.FFI),
    Deny("numpy.ctypeslib", None, C.FFI),
    Deny("torch.ops", _n("load_library"), C.FFI),
    Deny("torch.classes", _n("load_library"), C.FFI),
    Deny("torch._C", None, C.FFI),
    Deny("_testcapi", None, C.FFI),
    Deny("_testinternalcapi", None, C.FFI),
    Deny("faulthandler", None, C.FFI),
    Deny("resource", None, C.FFI),
    # --- by behaviour class, in the libraries the allow packs cover (issue 14) ---
    # code generation and execution
    Deny("dill._dill", _n("_eval_repr"), C.EXEC, "evaluates a repr string"),
    Deny(
        "torch.fx.graph_module",
        _n(
            "_exec_with_source _forward_from_src _method_from_src "
            "reduce_package_graph_module reduce_deploy_graph_module"
        ),
        C.EXEC,
        "torch.fx code generation: compiles and runs the source it is given",
    ),
    Deny("torch.fx.experimental", None, C.EXEC_STRING, "symbolic-shape guards are evaluated as code"),
    Deny("torch._export", None, C.EXEC, "export/serde rebuilds and runs graph code"),
    Deny("pandas", _n("eval"), C.EXEC_STRING),
    Deny("pandas.core.computation", None, C.EXEC_STRING, "DataFrame.eval/query expression engines"),
    # dynamic import and module loading
    Deny("transformers.utils.import_utils", None, C.DYNAMIC, "lazy module loader imports by name"),
    Deny("dill.source", None, C.DYNAMIC, "imports and reads source by name"),
    # process and shell
    Deny("gensim.utils", _n("check_output"), C.PROCESS, "wraps subprocess.Popen"),
    Deny("joblib.externals", None, C.PROCESS, "vendored loky: process pools and a copy of pickle.loads"),
    Deny("joblib.pool", None, C.PROCESS),
    Deny("joblib._parallel_backends", None, C.PROCESS),
    Deny("joblib.executor", None, C.PROCESS),
    Deny("sklearn.utils._testing", None, C.HIDDEN_SHELL, "assert_run_python_script runs an interpreter"),
    Deny("xgboost.tracker", None, C.NETWORK, "RabitTracker opens sockets"),
    Deny("xgboost.collective", None, C.NETWORK),
    Deny("xgboost.dask", None, C.NETWORK),
    Deny("xgboost.spark", None, C.NETWORK),
    Deny("lightgbm.dask", None, C.NETWORK),
    # file write and delete
    Deny("torch", _n("save"), C.FILESYSTEM),
    Deny("torch.serialization", _n("save _save _legacy_save _open_file _open_zipfile_writer"), C.FILESYSTEM),
    Deny("joblib", _n("dump Memory"), C.FILESYSTEM),
    Deny("joblib.numpy_pickle", _n("dump"), C.FILESYSTEM),
    Deny("joblib.memory", None, C.FILESYSTEM),
    Deny("joblib._store_backends", None, C.FILESYSTEM),
    Deny("dill", _n("dump dump_session dump_module"), C.FILESYSTEM),
    Deny("dill._dill", _n("dump dump_session dump_module"), C.FILESYSTEM),
    Deny("dill.temp", None, C.FILESYSTEM, "dumps to and loads from temporary files"),
    Deny("gensim.utils", _n("pickle"), C.FILESYSTEM, "pickles an object to a path"),
    Deny("sklearn.datasets", _n("dump_svmlight_file"), C.FILESYSTEM),
    # network fetch
    Deny("numpy.lib._datasource", None, C.NETWORK, "DataSource/open fetch URLs and cache them on disk"),
    Deny("gensim.downloader", None, C.NETWORK),
    Deny("transformers.utils.hub", None, C.NETWORK),
    Deny("transformers", _n("pipeline"), C.NESTED, "downloads and loads models by name"),
    Deny("transformers.pipelines", _n("pipeline"), C.NESTED),
    # nested deserialisation (private and vendored copies)
    Deny("numpy.lib._format_impl", _n("read_array open_memmap write_array"), C.NESTED, "numpy 2 rename of lib.format"),
    Deny("numpy.lib._utils_impl", _n("_opt_info"), C.NESTED),
    Deny("pandas.compat.pickle_compat", None, C.NESTED, "pandas' compatibility unpickler"),
    Deny("joblib.numpy_pickle_compat", _n("load_compatibility read_zfile read_array"), C.NESTED),
    Deny("gensim.utils", _n("unpickle open open_file"), C.NESTED, "unpickles a path or URL (smart_open)"),
    Deny("transformers.modeling_utils", _n("load_state_dict"), C.NESTED, "torch.load of a checkpoint path"),
    # scanner interference
    Deny("fickling", None, C.SCANNER),
    Deny("picklescan", None, C.SCANNER),
    Deny("modelscan", None, C.SCANNER),
    Deny("modelaudit", None, C.SCANNER),
    Deny("model_unpickler", None, C.SCANNER),
    Deny("saferpickle", None, C.SCANNER),
    Deny("mlgate", None, C.SCANNER),
)
DENIED_ATTRIBUTES: dict[str, Category] = {
    "from_pretrained": C.NESTED,  # downloads and loads weights (pickles) and code
    "from_single_file": C.NESTED,
    "load_state_dict_from_url": C.NESTED,
    "download_url_to_file": C.NESTED,
    "load_config": C.NESTED,
    "__reduce__": C.DYNAMIC,
    "__reduce_ex__": C.DYNAMIC,
    "__setstate__": C.DYNAMIC,
    "__getattribute__": C.DYNAMIC,
    "__getattr__": C.DYNAMIC,
    "__subclasses__": C.DYNAMIC,
    "__globals__": C.DYNAMIC,
    "__builtins__": C.DYNAMIC,
    "__init_subclass__": C.DYNAMIC,
}
for _attr in (
    "load loads load_model load_word2vec_format load_from_disk from_file read_pickle read_array _load "
    "load_state_dict_from_url load_pretrained load_checkpoint"
).split():
    DENIED_ATTRIBUTES.setdefault(_attr, C.NESTED)  # a model class's load accepting a path or URL
for _attr in (
    "to_pickle to_csv to_parquet to_json to_excel to_hdf to_feather to_sql to_stata to_orc to_xml to_html "
    "to_latex to_markdown to_clipboard tofile dump save savez save_pretrained save_model save_config "
    "save_word2vec_format write_text write_bytes to_netcdf"
).split():
    DENIED_ATTRIBUTES.setdefault(_attr, C.FILESYSTEM)  # DataFrame/ndarray/model methods writing to a path
for _attr in ("eval", "query", "exec", "run_code"):
    DENIED_ATTRIBUTES.setdefault(_attr, C.EXEC_STRING)  # DataFrame.eval/query evaluate expressions
"""Attribute names denied as the last part of any dotted qualname (``SomeModel.from_pretrained``,
``DataFrame.to_csv``, ``Word2Vec.load``): a method reached through a class is a call of that method."""


class DenyPattern(NamedTuple):
    """Denied wherever a library vendors or re-exports it: modules matching the globs ``modules``
    (``fnmatch``, ``*`` spans dots), names fully matching the regular expression ``names``."""

    modules: str
    names: str
    category: Category
    note: str = ""


DENIED_PATTERNS: tuple[DenyPattern, ...] = (
    DenyPattern(
        "*cloudpickle *cloudpickle.*",
        r"loads?",
        C.NESTED,
        "cloudpickle.loads is pickle.loads (vendored by joblib, ray, pyspark, srsly...)",
    ),
    DenyPattern("*dill *dill.*", r"loads?|load_session|load_module|_eval_repr", C.NESTED, "vendored dill loaders"),
    DenyPattern("*.loky *.loky.*", r".+", C.PROCESS, "vendored loky: process pools and a copy of pickle.loads"),
    DenyPattern(
        "numpy numpy.*",
        r"load|loads|fromfile|fromregex|loadtxt|genfromtxt|read_array|open_memmap",
        C.NESTED,
        "numpy loaders, public or privately renamed (numpy.lib._npyio_impl...)",
    ),
    DenyPattern(
        "numpy numpy.*",
        r"save|savez|savez_compressed|savetxt|tofile|write_array|dump",
        C.FILESYSTEM,
        "numpy writers, public or privately renamed",
    ),
    DenyPattern(
        "torch torch.*",
        r"load|_load|_legacy_load|load_state_dict_from_url|download_url_to_file|"
        r"_load_from_bytes_unsafe",
        C.NESTED,
        "torch loaders wherever torch re-exports them",
    ),
    DenyPattern(
        "*",
        r"get_class_from_dynamic_module|get_cached_module_file|get_class_in_module|"
        r"resolve_trust_remote_code",
        C.NESTED,
        "transformers' remote-code loader, wherever re-exported",
    ),
    DenyPattern(
        "sklearn.datasets sklearn.datasets.*",
        r"fetch_\w+|load_svmlight_files?|load_files",
        C.NETWORK,
        "downloads data sets (and caches them on disk)",
    ),
)
"""Deny rules that hold for private and vendored copies, not one module path."""


# --- allowlist packs ----------------------------------------------------------------------------
_BUILTIN_TYPES = "object set frozenset bytearray bytes complex dict float int list slice str tuple range bool"
_NUMPY_SCALARS = (
    "bool_ bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 intc uintc intp uintp longlong ulonglong "
    "float16 float32 float64 longdouble half single double complex64 complex128 clongdouble csingle cdouble "
    "str_ bytes_ void object_ datetime64 timedelta64 generic number integer floating complexfloating"
)
_NUMPY_UFUNCS = (
    "abs absolute add arccos arccosh arcsin arcsinh arctan arctan2 arctanh cbrt ceil clip conj conjugate cos "
    "cosh deg2rad degrees divide equal exp exp2 expm1 fabs floor floor_divide fmax fmin fmod greater "
    "greater_equal hypot isfinite isinf isnan less less_equal log log10 log1p log2 logaddexp logical_and "
    "logical_not logical_or maximum minimum mod multiply negative power rad2deg radians reciprocal remainder "
    "rint sign sin sinh sqrt square subtract tan tanh true_divide trunc sum mean median std var nan_to_num"
)
_TORCH_DTYPES = (
    "float32 float float64 double float16 half bfloat16 complex32 complex64 cfloat complex128 cdouble uint8 "
    "uint16 uint32 uint64 int8 int16 short int32 int int64 long bool quint8 qint8 qint32 quint4x2 quint2x4 "
    "float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz"
)
_TORCH_STORAGES = (
    "FloatStorage DoubleStorage HalfStorage BFloat16Storage LongStorage IntStorage ShortStorage CharStorage "
    "ByteStorage BoolStorage ComplexFloatStorage ComplexDoubleStorage QUInt8Storage QInt8Storage "
    "QInt32Storage QUInt4x2Storage QUInt2x4Storage UntypedStorage TypedStorage"
)

_PANDAS = (
    "pandas data structures, extension arrays, dtypes and block managers (the classes these modules define, "
    "listed by tools/pack_audit.py; names they import from pandas.io are not listed)"
)

PACKS: tuple[Pack, ...] = (
    Pack(
        "python",
        (
            Allow(
                "builtins", _n(_BUILTIN_TYPES), "built-in containers and scalars: constructing them runs no user code"
            ),
            Allow("builtins", _n("Ellipsis NotImplemented"), "built-in singletons"),
            Allow(
                "builtins",
                _n("hash len abs min max round sum divmod isinstance issubclass"),
                "pure built-in functions referenced as values (gensim stores builtins.hash as its hash function)",
            ),
            Allow(
                "builtins",
                _n(
                    "Exception ValueError TypeError KeyError IndexError RuntimeError AttributeError NotImplementedError"
                ),
                "exception classes: instances hold arguments only",
            ),
            Allow(
                "collections",
                _n("OrderedDict defaultdict deque Counter ChainMap UserDict UserList UserString namedtuple"),
                "standard containers",
            ),
            Allow("datetime", _n("date time datetime timedelta timezone tzinfo"), "date and time values"),
            Allow(
                "zoneinfo",
                _n("ZoneInfo ZoneInfo._unpickle"),
                "IANA time zones of tz-aware values: ZoneInfo._unpickle(key, from_cache) looks the zone up by "
                "name in the tz database (keys are normalized relative names; paths are refused)",
            ),
            Allow("decimal", _n("Decimal Context"), "decimal numbers"),
            Allow("fractions", _n("Fraction"), "rational numbers"),
            Allow("uuid", _n("UUID SafeUUID"), "UUID values (uuid helpers that run commands are denied)"),
            Allow(
                "ipaddress",
                _n("IPv4Address IPv6Address IPv4Network IPv6Network IPv4Interface IPv6Interface"),
                "address values",
            ),
            Allow(
                "pathlib",
                _n("Path PosixPath WindowsPath PurePath PurePosixPath PureWindowsPath"),
                "path values; constructing one touches nothing (file methods are denied)",
            ),
            Allow("argparse", _n("Namespace"), "training-script arguments saved in checkpoints"),
            Allow("types", _n("SimpleNamespace MappingProxyType"), "attribute bags"),
            Allow(
                "copyreg",
                _n("_reconstructor __newobj__ __newobj_ex__"),
                "protocol 0/1 object rebuilding; the class they instantiate is checked on its own",
            ),
            Allow("codecs", _n("encode"), "protocol 2 encodes bytes as _codecs.encode(str, 'latin1')"),
            Allow("re", _n("_compile compile Pattern RegexFlag"), "compiled regular expressions"),
            Allow("array", _n("array _array_reconstructor"), "typed arrays of numbers"),
            Allow("functools", _n("partial"), "partial objects; the function they wrap is checked on its own"),
            Allow("enum", _n("Enum IntEnum Flag IntFlag"), "enumeration base classes"),
            Allow("logging", _n("getLogger Logger RootLogger"), "loggers pickle as logging.getLogger(name)"),
            Allow("typing", _n("Any Union Optional List Dict Tuple Set Callable"), "type annotations"),
            Allow("math", _n("inf nan pi e"), "constants"),
            Allow("numbers", _n("Number Real Integral"), "numeric abstract classes"),
        ),
    ),
    Pack(
        "numpy",
        (
            Allow("numpy.core.multiarray", _n("_reconstruct scalar"), "ndarray and scalar rebuilding (numpy 1.x)"),
            Allow("numpy._core.multiarray", _n("_reconstruct scalar"), "ndarray and scalar rebuilding (numpy 2.x)"),
            Allow("numpy.core.numeric", _n("_frombuffer"), "ndarray rebuilding from a buffer (numpy 1.x)"),
            Allow("numpy._core.numeric", _n("_frombuffer"), "ndarray rebuilding from a buffer (numpy 2.x)"),
            Allow(
                "numpy",
                _n("ndarray dtype matrix recarray record") + _n(_NUMPY_SCALARS),
                "array, dtype and scalar types",
            ),
            Allow("numpy", _n(_NUMPY_UFUNCS), "element-wise math functions (sklearn FunctionTransformer(np.log1p))"),
            Pattern("numpy.dtypes", CLASS, "numpy 2 dtype classes (Float64DType...): descriptors, no behaviour"),
            Allow("numpy.core", _n("_ufunc_reconstruct"), "looks up a ufunc by name; the name it resolves is checked"),
            Allow("numpy._core", _n("_ufunc_reconstruct"), "looks up a ufunc by name; the name it resolves is checked"),
            Allow("numpy.ma.core", _n("_mareconstruct MaskedArray MaskedConstant"), "masked arrays"),
            Allow("numpy.ma", _n("MaskedArray masked_array"), "masked arrays"),
            Allow("numpy.matrixlib.defmatrix", _n("matrix"), "matrices"),
            Allow(
                "numpy.random._pickle",
                _n("__randomstate_ctor __bit_generator_ctor __generator_ctor"),
                "random generator state (sklearn random_state)",
            ),
            Allow("numpy.random", _n("__RandomState_ctor RandomState Generator"), "random generator state"),
            Allow("numpy.random.mtrand", _n("RandomState"), "random generator state"),
            Allow("numpy.random._mt19937", _n("MT19937"), "bit generator state"),
            Allow("numpy.random._pcg64", _n("PCG64 PCG64DXSM"), "bit generator state"),
            Allow("numpy.random._philox", _n("Philox"), "bit generator state"),
            Allow("numpy.random._sfc64", _n("SFC64"), "bit generator state"),
            Allow("numpy.random.bit_generator", _n("SeedSequence __pyx_unpickle_SeedSequence"), "seed sequences"),
            Allow("numpy.random._generator", _n("Generator"), "random generators"),
        ),
    ),
    Pack(
        "torch",
        (
            Allow(
                "torch._utils",
                _n(
                    "_rebuild_tensor _rebuild_tensor_v2 _rebuild_tensor_v3 _rebuild_parameter "
                    "_rebuild_parameter_with_state _rebuild_qtensor _rebuild_sparse_tensor "
                    "_rebuild_sparse_csr_tensor _rebuild_nested_tensor _rebuild_device_tensor_from_numpy "
                    "_rebuild_meta_tensor_no_storage _rebuild_wrapper_subclass "
                    "_rebuild_device_tensor_from_cpu_tensor"
                ),
                "tensor rebuilding from storages (the set torch.load(weights_only=True) accepts)",
            ),
            Allow("torch._tensor", _n("_rebuild_from_type_v2 _rebuild_from_type Tensor"), "tensor subclass rebuilding"),
            Allow("torch", _n(_TORCH_STORAGES), "storage classes named by persistent ids"),
            Allow("torch.storage", _n("UntypedStorage TypedStorage _LegacyStorage"), "storage classes"),
            Allow("torch", _n(_TORCH_DTYPES), "dtype singletons"),
            Allow(
                "torch",
                _n(
                    "Size device Tensor dtype layout memory_format strided sparse_coo sparse_csr sparse_csc "
                    "sparse_bsr sparse_bsc _mkldnn contiguous_format channels_last channels_last_3d "
                    "preserve_format per_tensor_affine per_channel_affine per_tensor_symmetric "
                    "per_channel_symmetric per_channel_affine_float_qparams Generator"
                ),
                "shape, device, layout and quantisation descriptors",
            ),
            Allow("torch.serialization", _n("_get_layout"), "layout lookup by name used by sparse tensors"),
            Allow(
                "torch.nn.parameter", _n("Parameter Buffer UninitializedParameter UninitializedBuffer"), "parameters"
            ),
            Pattern(
                "torch.nn.modules torch.nn.modules.*",
                CLASS,
                "torch.nn layer classes of full-model saves (torch.save(model)): rebuilt with __new__ and their "
                "__dict__, their __init__ only builds parameters",
            ),
            Allow(
                "torch.nn.functional",
                _n(
                    "relu relu6 gelu silu mish elu selu celu leaky_relu prelu rrelu glu hardtanh hardswish "
                    "hardsigmoid sigmoid tanh softmax log_softmax softmin softplus softsign tanhshrink "
                    "softshrink hardshrink logsigmoid threshold normalize dropout linear layer_norm "
                    "group_norm batch_norm instance_norm embedding pad interpolate one_hot cross_entropy "
                    "mse_loss l1_loss nll_loss binary_cross_entropy binary_cross_entropy_with_logits "
                    "smooth_l1_loss huber_loss kl_div cosine_similarity"
                ),
                "functional tensor ops stored as activation or loss attributes (F.relu): pure tensor math",
            ),
            Allow("torch.nn.utils.parametrize", _n("ParametrizationList"), "parametrized layers"),
            Allow("torch.nn.utils.weight_norm", _n("WeightNorm"), "weight-norm hooks"),
            Allow(
                "torch.nn.utils.spectral_norm",
                _n("SpectralNorm SpectralNormStateDictHook SpectralNormLoadStateDictPreHook"),
                "spectral-norm hooks",
            ),
            Pattern(
                "torch.optim torch.optim.*",
                CLASS,
                "optimizer and LR scheduler classes of saved training state: hold hyperparameters and tensors",
            ),
            Allow("torch.amp.grad_scaler", _n("GradScaler"), "mixed-precision scaler state"),
            Allow("torch.cuda.amp.grad_scaler", _n("GradScaler"), "mixed-precision scaler state"),
            Allow(
                "torch.jit._pickle",
                _n(
                    "restore_type_tag build_intlist build_tensorlist build_doublelist "
                    "build_boollist build_tensor_from_id"
                ),
                "TorchScript container helpers",
            ),
            Pattern(
                "__torch__ __torch__.*",
                r"[A-Za-z_][A-Za-z0-9_]*",
                "TorchScript classes: compiled from the archive's code/ by torch.jit, never imported by Python "
                "(code/ is checked separately); no Python module is named __torch__",
            ),
            Allow(
                "torch.fx.graph_module",
                _n("reduce_graph_module"),
                "rebuilds a GraphModule by running its generated source: the source is checked on its own "
                "(analyzers/pickles/fx_code.py) and anything torch would not generate is MLG-PKL-027",
            ),
            Allow("torch.fx._symbolic_trace", _n("Tracer"), "the tracer class a GraphModule records"),
            Allow("torch.fx.graph_module", _n("GraphModule"), "GraphModule class"),
            Pattern("torch.distributions torch.distributions.*", CLASS, "probability distribution objects"),
            Pattern("torch.ao.quantization torch.ao.quantization.*", CLASS, "quantisation observers and qconfigs"),
            Allow(
                "torch._C",
                _n("Generator"),
                "random generator state (torch.Generator pickles as torch._C.Generator(device) + __setstate__ of "
                "its seed and state tensor); the rest of torch._C stays denied",
            ),
        ),
    ),
    Pack(
        "scikit-learn",
        tuple(
            Pattern(
                f"sklearn.{sub} sklearn.{sub}.*",
                CLASS,
                "estimator classes and their fitted helper objects (trees, losses, binners): parameters only",
            )
            for sub in (
                "linear_model",
                "ensemble",
                "tree",
                "preprocessing",
                "pipeline",
                "compose",
                "decomposition",
                "svm",
                "neighbors",
                "cluster",
                "naive_bayes",
                "feature_extraction",
                "feature_selection",
                "impute",
                "model_selection",
                "calibration",
                "discriminant_analysis",
                "gaussian_process",
                "isotonic",
                "kernel_approximation",
                "kernel_ridge",
                "manifold",
                "mixture",
                "multiclass",
                "multioutput",
                "neural_network",
                "random_projection",
                "semi_supervised",
                "cross_decomposition",
                "dummy",
                "covariance",
                "frozen",
                "_loss",
            )
        )
        + (
            Pattern("sklearn.metrics._scorer", CLASS, "scorer objects of search estimators"),
            Pattern("sklearn.metrics._dist_metrics", CLASS, "distance metric objects of neighbour estimators"),
            Allow(
                "sklearn.metrics._dist_metrics",
                _n("newObj"),
                "Cython __reduce__ helper: instance of the class it is given (checked on its own)",
            ),
            Allow(
                "sklearn.neighbors._kd_tree",
                _n("newObj"),
                "Cython __reduce__ helper: instance of the class it is given (checked on its own)",
            ),
            Allow(
                "sklearn.neighbors._ball_tree",
                _n("newObj"),
                "Cython __reduce__ helper: instance of the class it is given (checked on its own)",
            ),
            Allow(
                "sklearn.metrics",
                _n(
                    "accuracy_score r2_score mean_squared_error mean_absolute_error f1_score "
                    "roc_auc_score log_loss make_scorer"
                ),
                "metric functions held by scorers",
            ),
            Allow(
                "sklearn.metrics._regression",
                _n(
                    "r2_score mean_squared_error mean_absolute_error median_absolute_error max_error "
                    "explained_variance_score mean_absolute_percentage_error mean_squared_log_error "
                    "root_mean_squared_error root_mean_squared_log_error mean_pinball_loss mean_poisson_deviance "
                    "mean_gamma_deviance mean_tweedie_deviance d2_absolute_error_score d2_pinball_score "
                    "d2_tweedie_score"
                ),
                "metric functions held by scorers: arrays in, a number out",
            ),
            Allow(
                "sklearn.metrics._classification",
                _n(
                    "accuracy_score balanced_accuracy_score f1_score fbeta_score precision_score recall_score "
                    "jaccard_score log_loss matthews_corrcoef cohen_kappa_score hamming_loss zero_one_loss "
                    "brier_score_loss hinge_loss confusion_matrix precision_recall_fscore_support "
                    "d2_log_loss_score"
                ),
                "metric functions held by scorers: arrays in, a number out",
            ),
            Allow(
                "sklearn.metrics._ranking",
                _n(
                    "roc_auc_score average_precision_score ndcg_score dcg_score top_k_accuracy_score "
                    "label_ranking_average_precision_score coverage_error label_ranking_loss"
                ),
                "metric functions held by scorers: arrays in, a number out",
            ),
            Allow("sklearn.utils._bunch", _n("Bunch"), "attribute bags"),
            Allow("sklearn.utils", _n("Bunch"), "attribute bags"),
            Pattern("sklearn.utils._tags", CLASS, "estimator tag dataclasses"),
            Allow(
                "sklearn.utils._metadata_requests",
                _n("MetadataRequest MethodMetadataRequest MetadataRouter MethodMapping MethodPair RouterMappingPair"),
                "metadata-routing records of meta-estimators: dictionaries of parameter names",
            ),
            Allow(
                "sklearn.cluster._kmeans",
                _n("_kmeans_single_lloyd _kmeans_single_elkan"),
                "k-means inner loops referenced as values by BisectingKMeans: numeric kernels",
            ),
            Allow(
                "sklearn.feature_selection._univariate_selection",
                _n("f_classif f_regression chi2 r_regression f_oneway"),
                "score functions held by univariate selectors: arrays in, statistics out",
            ),
            Allow(
                "sklearn.feature_selection._mutual_info",
                _n("mutual_info_classif mutual_info_regression"),
                "score functions held by univariate selectors: arrays in, statistics out",
            ),
            Allow("sklearn.base", _n("BaseEstimator"), "estimator base class"),
        ),
    ),
    Pack(
        "scipy",
        tuple(
            Pattern(f"scipy.sparse.{sub}", CLASS + r"|[a-z]{3}_(?:matrix|array)", "sparse matrix and array classes")
            for sub in (
                "_csr",
                "_csc",
                "_coo",
                "_lil",
                "_dok",
                "_bsr",
                "_dia",
                "_arrays",
                "_matrix",
                "_base",
                "_data",
                "_compressed",
                "csr",
                "csc",
                "coo",
                "lil",
                "dok",
                "bsr",
                "dia",
            )
        )
        + (
            Allow(
                "scipy.sparse",
                _n(
                    "csr_matrix csc_matrix coo_matrix lil_matrix dok_matrix bsr_matrix dia_matrix "
                    "csr_array csc_array coo_array lil_array dok_array bsr_array dia_array"
                ),
                "sparse matrix and array classes",
            ),
            Allow(
                "scipy.stats._distn_infrastructure",
                _n("rv_continuous_frozen rv_discrete_frozen"),
                "frozen distributions",
            ),
            Pattern("scipy.stats._continuous_distns", CLASS, "distribution classes"),
            Allow("scipy.interpolate._bsplines", _n("BSpline"), "B-spline coefficients (sklearn SplineTransformer)"),
            Allow(
                "scipy._lib.array_api_compat.numpy._aliases",
                _n("asarray"),
                "array-namespace asarray referenced by fitted estimators: builds an array from data",
            ),
            Pattern(
                "scipy.stats._continuous_distns scipy.stats._discrete_distns",
                r"[a-z][a-z0-9]*_gen",
                "distribution generator classes (norm_gen...): scipy names them in lowercase",
            ),
        ),
    ),
    Pack(
        "joblib",
        (
            Allow(
                "joblib.numpy_pickle",
                _n("NumpyArrayWrapper"),
                "placeholder for an array whose bytes follow inline (scanned past by shape and dtype)",
            ),
            Allow(
                "joblib.numpy_pickle_compat",
                _n("NDArrayWrapper ZNDArrayWrapper"),
                "old joblib array placeholders (arrays in side files)",
            ),
        ),
    ),
    Pack(
        "pandas",
        (
            Allow(
                "pandas",
                _n(
                    "DataFrame Series Index RangeIndex MultiIndex CategoricalIndex DatetimeIndex "
                    "TimedeltaIndex PeriodIndex IntervalIndex Categorical Timestamp Timedelta Period "
                    "Interval StringDtype CategoricalDtype DatetimeTZDtype PeriodDtype IntervalDtype Int64Dtype "
                    "Float64Dtype BooleanDtype NaT NA"
                ),
                "pandas data structures",
            ),
            Allow(
                "pandas",
                _n(
                    "PeriodDtype IntervalDtype SparseDtype Float32Dtype Int8Dtype Int16Dtype Int32Dtype "
                    "UInt8Dtype UInt16Dtype UInt32Dtype UInt64Dtype ArrowDtype"
                ),
                "pandas dtypes",
            ),
            Allow("pandas.core.arrays._arrow_string_mixins", _n("ArrowStringArrayMixin"), _PANDAS),
            Allow("pandas.core.arrays._mixins", _n("NDArrayBackedExtensionArray"), _PANDAS),
            Allow("pandas.core.arrays.arrow.accessors", _n("ArrowAccessor ListAccessor StructAccessor"), _PANDAS),
            Allow("pandas.core.arrays.arrow.array", _n("ArrowExtensionArray"), _PANDAS),
            Allow("pandas.core.arrays.arrow.extension_types", _n("ArrowIntervalType ArrowPeriodType"), _PANDAS),
            Allow(
                "pandas.core.arrays.base",
                _n("ExtensionArray ExtensionArrayNaResult ExtensionOpsMixin ExtensionScalarOpsMixin"),
                _PANDAS,
            ),
            Allow("pandas.core.arrays.boolean", _n("BooleanArray BooleanDtype"), _PANDAS),
            Allow("pandas.core.arrays.categorical", _n("Categorical CategoricalAccessor"), _PANDAS),
            Allow("pandas.core.arrays.datetimelike", _n("DatelikeOps DatetimeLikeArrayMixin TimelikeOps"), _PANDAS),
            Allow("pandas.core.arrays.datetimes", _n("DatetimeArray"), _PANDAS),
            Allow(
                "pandas.core.arrays.floating",
                _n("Float32Dtype Float64Dtype FloatingArray FloatingDtype"),
                _PANDAS,
            ),
            Allow(
                "pandas.core.arrays.integer",
                _n(
                    "Int16Dtype Int32Dtype Int64Dtype Int8Dtype IntegerArray IntegerDtype UInt16Dtype "
                    "UInt32Dtype UInt64Dtype UInt8Dtype"
                ),
                _PANDAS,
            ),
            Allow("pandas.core.arrays.interval", _n("IntervalArray"), _PANDAS),
            Allow("pandas.core.arrays.masked", _n("BaseMaskedArray"), _PANDAS),
            Allow("pandas.core.arrays.numeric", _n("NumericArray NumericDtype"), _PANDAS),
            Allow("pandas.core.arrays.numpy_", _n("NumpyExtensionArray"), _PANDAS),
            Allow("pandas.core.arrays.period", _n("PeriodArray"), _PANDAS),
            Allow(
                "pandas.core.arrays.sparse.accessor",
                _n("BaseAccessor SparseAccessor SparseFrameAccessor"),
                _PANDAS,
            ),
            Allow("pandas.core.arrays.sparse.array", _n("SparseArray"), _PANDAS),
            Allow("pandas.core.arrays.string_", _n("BaseStringArray StringArray StringDtype"), _PANDAS),
            Allow("pandas.core.arrays.string_arrow", _n("ArrowStringArray"), _PANDAS),
            Allow("pandas.core.arrays.timedeltas", _n("TimedeltaArray"), _PANDAS),
            Allow("pandas.core.dtypes.base", _n("ExtensionDtype Registry StorageExtensionDtype"), _PANDAS),
            Allow(
                "pandas.core.dtypes.dtypes",
                _n(
                    "ArrowDtype BaseMaskedDtype CategoricalDtype CategoricalDtypeType DatetimeTZDtype "
                    "IntervalDtype NumpyEADtype PandasExtensionDtype PeriodDtype SparseDtype"
                ),
                _PANDAS,
            ),
            Allow("pandas.core.frame", _n("DataFrame _DuplicateColumnRecorder"), _PANDAS),
            Allow(
                "pandas.core.indexes.accessors",
                _n(
                    "ArrowTemporalProperties CombinedDatetimelikeProperties DatetimeProperties PeriodProperties "
                    "Properties TimedeltaProperties"
                ),
                _PANDAS,
            ),
            Allow("pandas.core.indexes.base", _n("Index"), _PANDAS),
            Allow("pandas.core.indexes.category", _n("CategoricalIndex"), _PANDAS),
            Allow("pandas.core.indexes.datetimelike", _n("DatetimeIndexOpsMixin DatetimeTimedeltaMixin"), _PANDAS),
            Allow("pandas.core.indexes.datetimes", _n("DatetimeIndex"), _PANDAS),
            Allow("pandas.core.indexes.extension", _n("ExtensionIndex NDArrayBackedExtensionIndex"), _PANDAS),
            Allow("pandas.core.indexes.frozen", _n("FrozenList"), _PANDAS),
            Allow("pandas.core.indexes.interval", _n("IntervalIndex"), _PANDAS),
            Allow(
                "pandas.core.indexes.multi",
                _n(
                    "MultiIndex MultiIndexPyIntEngine MultiIndexUInt16Engine MultiIndexUInt32Engine "
                    "MultiIndexUInt64Engine MultiIndexUInt8Engine"
                ),
                _PANDAS,
            ),
            Allow("pandas.core.indexes.period", _n("PeriodIndex"), _PANDAS),
            Allow("pandas.core.indexes.range", _n("RangeIndex"), _PANDAS),
            Allow("pandas.core.indexes.timedeltas", _n("TimedeltaIndex"), _PANDAS),
            Allow("pandas.core.internals.api", _n("_DatetimeTZBlock"), _PANDAS),
            Allow(
                "pandas.core.internals.blocks",
                _n("Block DatetimeLikeBlock EABackedBlock ExtensionBlock NDArrayBackedExtensionBlock NumpyBlock"),
                _PANDAS,
            ),
            Allow("pandas.core.internals.concat", _n("JoinUnit"), _PANDAS),
            Allow("pandas.core.internals.managers", _n("BaseBlockManager BlockManager SingleBlockManager"), _PANDAS),
            Allow("pandas.core.internals.ops", _n("BlockPairInfo"), _PANDAS),
            Allow("pandas.core.series", _n("Series"), _PANDAS),
            Allow(
                "pandas.arrays",
                _n(
                    "ArrowExtensionArray ArrowStringArray BooleanArray Categorical DatetimeArray FloatingArray "
                    "IntegerArray IntervalArray NumpyExtensionArray PeriodArray SparseArray StringArray "
                    "TimedeltaArray"
                ),
                "pandas.arrays re-exports the extension array classes listed above under their public names",
            ),
            Allow("pandas.core.indexes.base", _n("_new_Index"), "index rebuilding (Index.__reduce__)"),
            Allow("pandas.core.internals.blocks", _n("new_block"), "block rebuilding"),
            Allow("pandas._libs.internals", _n("_unpickle_block"), "block rebuilding (Block.__reduce__)"),
            Allow(
                "pandas._libs.arrays",
                _n("__pyx_unpickle_NDArrayBacked"),
                "Cython rebuild of datetime/timedelta/period/categorical arrays",
            ),
            Allow("pandas._libs.interval", _n("Interval __pyx_unpickle_IntervalMixin"), "interval values"),
            Allow(
                "pandas._libs.tslibs.timestamps",
                _n("_unpickle_timestamp Timestamp"),
                "timestamp rebuilding (Timestamp.__reduce__)",
            ),
            Allow("pandas._libs.tslibs.timedeltas", _n("_timedelta_unpickle Timedelta"), "timedelta rebuilding"),
            Allow("pandas._libs.tslibs.nattype", _n("__nat_unpickle NaTType"), "the NaT singleton"),
            Allow("pandas._libs.tslibs.period", _n("Period"), "period values"),
            Allow("pandas._libs.missing", _n("NAType"), "the NA singleton"),
            Pattern("pandas._libs.tslibs.offsets pandas.tseries.offsets", CLASS, "date offset classes"),
            Allow(
                "pytz",
                _n("_p _UTC utc"),
                "pytz time zones of tz-aware values (pandas < 3's default): _p(zone, ...) looks the zone up by "
                "name (pytz refuses names with path parts)",
            ),
            Allow(
                "pyarrow.lib",
                _n(
                    "_restore_array py_buffer type_for_alias array table Table RecordBatch "
                    "schema field Schema Field ChunkedArray chunked_array"
                ),
                "Arrow arrays behind pandas string columns",
            ),
        ),
    ),
    Pack(
        "gensim",
        (
            Allow("gensim.models.keyedvectors", _n("KeyedVectors Vocab"), "word vectors and their vocabulary"),
            Allow("gensim.models.word2vec", _n("Word2Vec"), "word2vec models (vectors and training settings)"),
            Allow("gensim.models.doc2vec", _n("Doc2Vec TaggedDocument"), "doc2vec models and documents"),
            Allow("gensim.models.fasttext", _n("FastText FastTextKeyedVectors"), "fastText models"),
            Allow("gensim.models.ldamodel", _n("LdaModel LdaState"), "LDA topic models"),
            Allow("gensim.models.tfidfmodel", _n("TfidfModel"), "tf-idf weights"),
            Allow("gensim.models.lsimodel", _n("LsiModel Projection"), "LSI models"),
            Allow("gensim.corpora.dictionary", _n("Dictionary"), "token dictionaries"),
            Allow("gensim.utils", _n("call_on_class_only SaveLoad"), "gensim marker function and base class"),
            Allow(
                "gensim.similarities.docsim",
                _n("MatrixSimilarity SparseMatrixSimilarity"),
                "in-memory similarity indexes",
            ),
        ),
    ),
    Pack(
        "transformers",
        (
            Pattern(
                "transformers.models.*.configuration_* transformers.models.*.modeling_*",
                CLASS,
                "model and configuration classes (the auto-configuration modules, which re-export the "
                "dynamic-module loader, are excluded; tokenizer and processor classes are not listed: their "
                "__init__ may fetch from the Hub, pack_audit.md)",
                exclude="transformers.models.auto.*",
            ),
            Allow("transformers.configuration_utils", _n("PretrainedConfig PreTrainedConfig"), "configurations"),
            Allow(
                "transformers.tokenization_utils_base",
                _n("BatchEncoding AddedToken TruncationStrategy PaddingStrategy"),
                "tokenizer outputs",
            ),
            Allow("transformers.training_args", _n("TrainingArguments"), "training arguments (training_args.bin)"),
            Allow(
                "transformers.trainer_utils",
                _n("IntervalStrategy SchedulerType HubStrategy SaveStrategy EvaluationStrategy"),
                "training argument enums",
            ),
            Allow("transformers.training_args", _n("OptimizerNames"), "training argument enums"),
            Allow("transformers.utils.generic", _n("ExplicitEnum PaddingStrategy TensorType"), "enums"),
            Allow("transformers.debug_utils", _n("DebugOption"), "training argument enums"),
            Allow("transformers.generation.configuration_utils", _n("GenerationConfig"), "generation settings"),
            Allow("accelerate.utils.dataclasses", _n("DistributedType"), "accelerate enums in training arguments"),
            Allow("accelerate.state", _n("PartialState"), "accelerate state in training arguments"),
            Allow(
                "transformers.trainer_pt_utils",
                _n("AcceleratorConfig"),
                "accelerator settings dataclass held by TrainingArguments",
            ),
            Allow("tokenizers", _n("Tokenizer AddedToken Encoding"), "Rust tokenizer objects"),
            Pattern(
                "tokenizers.models tokenizers.pre_tokenizers tokenizers.normalizers tokenizers.decoders "
                "tokenizers.processors",
                CLASS,
                "Rust tokenizer component classes",
            ),
        ),
    ),
    Pack(
        "boosters",
        (
            Allow("xgboost.core", _n("Booster"), "booster: its model is raw bytes in the state"),
            Allow(
                "xgboost.sklearn",
                _n("XGBModel XGBClassifier XGBRegressor XGBRanker XGBRFClassifier XGBRFRegressor"),
                "scikit-learn wrappers of a booster",
            ),
            Allow("lightgbm.basic", _n("Booster"), "booster: its model is a string in the state"),
            Allow(
                "lightgbm.sklearn",
                _n("LGBMModel LGBMClassifier LGBMRegressor LGBMRanker"),
                "scikit-learn wrappers of a booster",
            ),
            Allow(
                "catboost.core",
                _n("CatBoost CatBoostClassifier CatBoostRegressor CatBoostRanker"),
                "CatBoost models: the model is bytes in the state",
            ),
        ),
    ),
    Pack(
        "vision",
        (
            Pattern("ultralytics.nn ultralytics.nn.*", CLASS, "YOLO network and layer classes"),
            Allow("ultralytics.utils", _n("IterableSimpleNamespace"), "YOLO training settings"),
            Pattern("torchvision.models torchvision.models.*", CLASS, "torchvision network classes"),
            Pattern("torchvision.ops torchvision.ops.*", CLASS, "torchvision layer classes"),
            Pattern("timm.models timm.models.*", CLASS, "timm network classes"),
            Pattern("timm.layers timm.layers.*", CLASS, "timm layer classes"),
        ),
    ),
    Pack(
        "serialized-functions",
        (
            Allow(
                "cloudpickle.cloudpickle",
                _n(
                    "_make_function _builtin_type _function_setstate _class_setstate "
                    "_make_skeleton_class _make_skeleton_enum _make_empty_cell "
                    "_make_cell _make_dict_keys _make_dict_values _make_dict_items "
                    "_enum_getstate _make_typevar subimport dynamic_subimport "
                    "_get_bases _lookup_class_or_track"
                ),
                "cloudpickle rebuilding of functions/classes; their code is reported as pickled code",
            ),
            Allow(
                "cloudpickle.cloudpickle_fast",
                _n("_make_function _builtin_type _function_setstate _class_setstate _make_skeleton_class subimport"),
                "cloudpickle (< 3) rebuilding helpers",
            ),
            Allow(
                "dill._dill",
                _n(
                    "_create_code _create_function _create_cell _create_type _load_type "
                    "_import_module _get_attr _create_namedtuple _create_array _create_dtypemeta "
                    "_setattr _create_lock _create_rlock"
                ),
                "dill rebuilding of functions/classes; their code is reported as pickled code",
            ),
            Allow("builtins", _n("__main__"), "dill's marker for the loading program's __main__ globals"),
            Allow("mlflow.pyfunc.model", _n("PythonModel"), "MLflow pyfunc base class"),
            Allow(
                "mlflow.models.signature",
                _n("_TypeHints"),
                "type-hint record MLflow stores on a pickled PythonModel (input/output hints)",
            ),
        ),
    ),
)

_MODELLED_IMPORT = (
    "imports the module named by its argument; the analyzer models this call (Behaviour.IMPORT): the name is "
    "resolved from the pickle's literal and classified on its own, and a computed name is MLG-PKL-014"
)
AUDIT_ACCEPTED: dict[str, str] = {
    "cloudpickle.cloudpickle.subimport": _MODELLED_IMPORT,
    "cloudpickle.cloudpickle.dynamic_subimport": _MODELLED_IMPORT,
    "cloudpickle.cloudpickle_fast.subimport": _MODELLED_IMPORT,
    "dill._dill._import_module": _MODELLED_IMPORT,
    "collections.namedtuple": "builds the tuple class from a template run with eval, after validating every "
    "field and type name as an identifier that is not a keyword: the file chooses names, not code",
    "numpy.core._ufunc_reconstruct": "imports the module named by its argument and looks a ufunc up in it; the "
    "analyzer models this call (Behaviour.RESOLVE): the name is classified on its own",
    "numpy._core._ufunc_reconstruct": "imports the module named by its argument and looks a ufunc up in it; the "
    "analyzer models this call (Behaviour.RESOLVE): the name is classified on its own",
    "dill._dill._create_namedtuple": "imports the module a namedtuple belongs to (through _import_module) only to "
    "look the class up; the class rebuilt is named in the pickle and classified on its own",
}
"""``module.name`` -> a reviewer's reason for a reach ``tools/pack_audit.py`` reports (empty: none needed)."""

# --- special behaviours -------------------------------------------------------------------------
BEHAVIOURS: dict[tuple[str, str], Behaviour] = {
    ("builtins", "getattr"): Behaviour.GETATTR,
    ("dill._dill", "_get_attr"): Behaviour.GETATTR,
    ("operator", "attrgetter"): Behaviour.ATTRGETTER,
    ("operator", "methodcaller"): Behaviour.ATTRGETTER,
    ("builtins", "__import__"): Behaviour.IMPORT,
    ("importlib", "import_module"): Behaviour.IMPORT,
    ("importlib", "__import__"): Behaviour.IMPORT,
    ("cloudpickle.cloudpickle", "subimport"): Behaviour.IMPORT,
    ("cloudpickle.cloudpickle", "dynamic_subimport"): Behaviour.IMPORT,
    ("cloudpickle.cloudpickle_fast", "subimport"): Behaviour.IMPORT,
    ("dill._dill", "_import_module"): Behaviour.IMPORT,
    ("pkgutil", "resolve_name"): Behaviour.RESOLVE,
    ("pydoc", "locate"): Behaviour.RESOLVE,
    ("numpy.core", "_ufunc_reconstruct"): Behaviour.RESOLVE,
    ("numpy._core", "_ufunc_reconstruct"): Behaviour.RESOLVE,
    ("cloudpickle.cloudpickle", "_builtin_type"): Behaviour.RESOLVE,
    ("cloudpickle.cloudpickle_fast", "_builtin_type"): Behaviour.RESOLVE,
    ("dill._dill", "_load_type"): Behaviour.RESOLVE,
    ("functools", "partial"): Behaviour.PARTIAL,
    ("copyreg", "_reconstructor"): Behaviour.RECONSTRUCTOR,
    ("copyreg", "__newobj__"): Behaviour.NEWOBJ,
    ("copyreg", "__newobj_ex__"): Behaviour.NEWOBJ,
    ("sklearn.metrics._dist_metrics", "newObj"): Behaviour.NEWOBJ,
    ("sklearn.neighbors._kd_tree", "newObj"): Behaviour.NEWOBJ,
    ("sklearn.neighbors._ball_tree", "newObj"): Behaviour.NEWOBJ,
    ("pickle", "loads"): Behaviour.NESTED,
    ("pickle", "load"): Behaviour.LOADER,
    ("pickle", "Unpickler"): Behaviour.LOADER,
    ("dill", "loads"): Behaviour.NESTED,
    ("dill._dill", "loads"): Behaviour.NESTED,
    ("cloudpickle", "loads"): Behaviour.NESTED,
    ("cloudpickle.cloudpickle", "loads"): Behaviour.NESTED,
    ("torch.storage", "_load_from_bytes"): Behaviour.NESTED,
    ("torch.utils._config_module", "ConfigModule.load_config"): Behaviour.NESTED,
    ("torch.utils.data.datapipes.utils.decoder", "basichandlers"): Behaviour.NESTED,
    ("yaml", "load"): Behaviour.NESTED,
    ("yaml", "unsafe_load"): Behaviour.NESTED,
    ("torch", "load"): Behaviour.LOADER,
    ("torch.serialization", "load"): Behaviour.LOADER,
    ("torch.jit", "load"): Behaviour.LOADER,
    ("numpy", "load"): Behaviour.LOADER,
    ("joblib", "load"): Behaviour.LOADER,
    ("joblib.numpy_pickle", "load"): Behaviour.LOADER,
    ("pandas", "read_pickle"): Behaviour.LOADER,
    ("shelve", "open"): Behaviour.LOADER,
    ("base64", "b64decode"): Behaviour.DECODE,
    ("base64", "standard_b64decode"): Behaviour.DECODE,
    ("base64", "urlsafe_b64decode"): Behaviour.DECODE,
    ("base64", "b32decode"): Behaviour.DECODE,
    ("base64", "b16decode"): Behaviour.DECODE,
    ("base64", "b85decode"): Behaviour.DECODE,
    ("base64", "a85decode"): Behaviour.DECODE,
    ("base64", "decodebytes"): Behaviour.DECODE,
    ("binascii", "a2b_base64"): Behaviour.DECODE,
    ("binascii", "unhexlify"): Behaviour.DECODE,
    ("binascii", "a2b_hex"): Behaviour.DECODE,
    ("builtins", "bytes.fromhex"): Behaviour.DECODE,
    ("builtins", "bytearray.fromhex"): Behaviour.DECODE,
    ("codecs", "decode"): Behaviour.DECODE,
    ("codecs", "encode"): Behaviour.DECODE,
    ("zlib", "decompress"): Behaviour.DECODE,
    ("gzip", "decompress"): Behaviour.DECODE,
    ("bz2", "decompress"): Behaviour.DECODE,
    ("lzma", "decompress"): Behaviour.DECODE,
    ("builtins", "bytes"): Behaviour.DECODE,
    ("builtins", "bytearray"): Behaviour.DECODE,
    ("io", "BytesIO"): Behaviour.BYTES_IO,
    ("types", "CodeType"): Behaviour.CODE,
    ("dill._dill", "_create_code"): Behaviour.CODE,
    ("types", "FunctionType"): Behaviour.FUNCTION,
    ("types", "LambdaType"): Behaviour.FUNCTION,
    ("cloudpickle.cloudpickle", "_make_function"): Behaviour.FUNCTION,
    ("cloudpickle.cloudpickle_fast", "_make_function"): Behaviour.FUNCTION,
    ("dill._dill", "_create_function"): Behaviour.FUNCTION,
    ("marshal", "loads"): Behaviour.MARSHAL,
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): Behaviour.ARRAY_WRAPPER,
    ("copyreg", "add_extension"): Behaviour.EXTENSION,
    ("torch.fx.graph_module", "reduce_graph_module"): Behaviour.FX_CODE,
}

PURE_DECODERS: tuple[Allow, ...] = (
    Allow(
        "base64",
        _n("b64decode standard_b64decode urlsafe_b64decode b32decode b16decode b85decode a85decode decodebytes"),
        "bytes-to-bytes decoding; where the result goes is checked",
    ),
    Allow("binascii", _n("a2b_base64 unhexlify a2b_hex"), "bytes-to-bytes decoding"),
    Allow("codecs", _n("decode"), "bytes/str decoding"),
    Allow("zlib", _n("decompress"), "decompression"),
    Allow("gzip", _n("decompress"), "decompression"),
    Allow("bz2", _n("decompress"), "decompression"),
    Allow("lzma", _n("decompress"), "decompression"),
    Allow("builtins", _n("bytes.fromhex bytearray.fromhex"), "hex decoding"),
    Allow("io", _n("BytesIO StringIO"), "in-memory buffers; where they go is checked"),
)
"""Pure data transforms: allowed (they only turn literals into bytes), evaluated to find payloads."""

SAFE_TORCHSCRIPT_NAMESPACES = frozenset({"aten", "prim", "quantized", "_caffe2"})
"""``torch.ops.<ns>`` namespaces TorchScript code may use without a host-loaded custom op library."""
