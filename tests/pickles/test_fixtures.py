"""Every committed fixture gets the verdict and the exact rule ids its construction calls for.

Benign files were written by the real libraries (``tests/fixtures/pickles/build_fixtures.py``)
and must be approved under the default policy. Malicious files each carry one technique from
docs/rules.md, Pickle; the expected rules follow from what the payload does (os.system is a process,
eval is exec, pickle.loads of embedded bytes is nesting...), not from running the scanner.
"""

from __future__ import annotations

import io
import pickletools

import pytest

from mlgate.analyzers.core.findings import Severity
from mlgate.analyzers.core.policy import Verdict

from .helpers import FIXTURES, by_rule, rules, verdict_of

PROC, EXEC, SHELL, STR = "MLG-PKL-002", "MLG-PKL-001", "MLG-PKL-003", "MLG-PKL-004"
DYN, NEST, FFI, SCAN = "MLG-PKL-005", "MLG-PKL-006", "MLG-PKL-009", "MLG-PKL-010"
UNRESOLVED, CODE, RUNS, NESTED = "MLG-PKL-014", "MLG-PKL-017", "MLG-PKL-018", "MLG-PKL-019"
FRAME, STREAMS, BROKEN, STRUCTURE = "MLG-PKL-020", "MLG-PKL-021", "MLG-PKL-023", "MLG-PKL-025"
OBJ_ARRAY = "MLG-NPY-001"

BENIGN = {
    "torch_state_dict.pt": set(),
    "torch_checkpoint.pt": set(),
    "torch_full_model.pt": set(),
    "torch_legacy.pt": set(),
    "torchscript.pt": set(),
    "tensor_plain_pickle.pkl": set(),  # torch.storage._load_from_bytes: the nested torch file is scanned
    "numpy_object.npy": {OBJ_ARRAY},
    "numpy_plain.npy": set(),
    "numpy_arrays.npz": {OBJ_ARRAY},
    "sklearn_pipeline.joblib": set(),
    "sklearn_pipeline_zlib.joblib": set(),
    "sklearn_pipeline_gzip.joblib": set(),
    "sklearn_pipeline_bz2.joblib": set(),
    "sklearn_pipeline_xz.joblib": set(),
    "sklearn_pipeline_lzma.joblib": set(),
    "sklearn_pipeline_lz4.joblib": set(),
    "sklearn_models.pkl": set(),
    "cloudpickle_function.pkl": {CODE},
    "dill_function.pkl": {CODE},
    "gensim_word2vec.pkl": set(),
    "gensim_dictionary.pkl": set(),
    "pandas_dataframe.pkl": set(),
    "scipy_sparse.pkl": set(),
    "numpy_random_state.pkl": set(),
    **{f"stdlib_values_p{p}.pkl": set() for p in range(6)},
}

# fixture -> (this area's rules, exactly; other rules that must also be present)
MALICIOUS: dict[str, tuple[set[str], set[str]]] = {
    # gadgets
    "reduce_os_system.pkl": ({PROC}, set()),
    "posix_system.pkl": ({PROC}, set()),
    "nt_system.pkl": ({PROC}, set()),
    "builtin_eval.pkl": ({EXEC}, set()),
    "builtins_exec.pkl": ({EXEC}, set()),
    "subprocess_popen.pkl": ({PROC}, set()),
    "subprocess_check_output.pkl": ({PROC}, set()),
    "pty_spawn.pkl": ({PROC}, set()),
    "runpy_run_code.pkl": ({EXEC}, set()),
    "uuid_command.pkl": ({SHELL}, set()),
    "cprofile_run.pkl": ({STR}, set()),
    "pip_main.pkl": ({SHELL}, set()),
    "torch_collect_env.pkl": ({SHELL}, set()),
    "numpy_runstring.pkl": ({STR}, set()),
    "asyncio_submodule.pkl": ({PROC}, set()),
    "ctypes_cdll.pkl": ({FFI, DYN}, set()),
    "pkgutil_resolve_name.pkl": ({DYN, PROC}, set()),
    "pydoc_locate_methodcaller.pkl": ({DYN, PROC}, set()),
    "getattr_import.pkl": ({EXEC, DYN, PROC}, set()),
    "attrgetter_import_module.pkl": ({DYN, PROC}, set()),
    "scanner_interference.pkl": ({SCAN, DYN, PROC}, set()),
    # call shapes
    "inst_os_system.pkl": ({PROC}, set()),
    "obj_os_system.pkl": ({PROC}, set()),
    "newobj_popen.pkl": ({PROC}, set()),
    "newobj_ex_popen.pkl": ({PROC}, set()),
    "build_setstate_partial.pkl": ({PROC}, set()),
    "reconstructor_popen.pkl": ({PROC}, set()),
    "popped_call.pkl": ({PROC}, set()),
    "ext_code.pkl": ({DYN, PROC}, set()),
    "ext_unregistered.pkl": ({UNRESOLVED}, set()),
    # name tricks
    "stack_global_memo.pkl": ({PROC}, set()),
    "memo_overwrite.pkl": ({EXEC, DYN, PROC}, set()),
    "computed_operands.pkl": ({PROC}, set()),
    "dotted_torch.pkl": ({PROC}, set()),
    "dotted_pathlib.pkl": ({PROC}, set()),
    "dotted_shutil.pkl": ({PROC}, set()),
    # stream tricks
    "multi_stream.pkl": ({STREAMS, PROC}, set()),
    "payload_then_garbage.pkl": ({PROC, BROKEN}, set()),
    "payload_then_eof.pkl": ({PROC, BROKEN}, set()),
    "misplaced_proto.pkl": ({PROC, STRUCTURE}, set()),
    "frame_discard.pkl": ({PROC, FRAME}, set()),
    "frame_too_long.pkl": ({PROC, FRAME}, set()),
    "frame_bytes_overrun.pkl": ({PROC, FRAME}, set()),
    # nesting and loaders of other files
    "nested_pickle_loads.pkl": ({NESTED, PROC}, set()),
    "nested_pickle_c.pkl": ({NESTED, PROC}, set()),
    "nested_base64.pkl": ({NESTED, PROC}, set()),
    "nested_hex.pkl": ({NESTED, PROC}, set()),
    "nested_zlib.pkl": ({NESTED, PROC}, set()),
    "nested_config_module.pkl": ({NESTED, PROC}, set()),
    "nested_basichandlers.pkl": ({NESTED, PROC}, set()),
    "nested_load_from_bytes.pkl": ({PROC}, set()),
    "nested_undecodable.pkl": ({NEST}, set()),
    "loader_other_file.pkl": ({NEST}, set()),
    "torch_load_bytesio.pkl": ({NESTED, PROC}, {"MLG-CORE-010"}),  # the embedded zip also makes a polyglot
    # code
    "marshal_function.pkl": ({EXEC, RUNS}, set()),
    "cloudpickle_evil_function.pkl": ({CODE}, set()),
    "cloudpickle_exec_at_load.pkl": ({CODE, RUNS}, set()),
    "dill_evil_function.pkl": ({CODE}, set()),
    # containers
    "plain_pickle_as_pt.pt": ({PROC}, set()),
    "torch_custom_root.pt": ({PROC}, set()),
    "torch_pickle_as_json.pt": ({PROC}, {"MLG-CORE-006"}),
    "torch_duplicate_datapkl.pt": ({PROC, "MLG-PT-001"}, {"MLG-ARC-009"}),
    "torch_legacy_payload_sysinfo.pt": ({PROC}, set()),
    "torch_legacy_magic_eval.pt": ({EXEC}, set()),
    "torch_legacy_tar.tar": ({PROC, "MLG-PT-003"}, set()),
    "npy_object_evil.npy": ({OBJ_ARRAY, PROC}, set()),
    "npy_structured_object.npy": ({OBJ_ARRAY, PROC}, set()),
    "npz_object_evil.npz": ({OBJ_ARRAY, PROC}, set()),
    "joblib_after_array.joblib": ({PROC}, set()),
    "joblib_object_array.joblib": ({PROC}, set()),
    "joblib_evil_zlib.joblib": ({PROC}, set()),
    "joblib_evil_lz4.joblib": ({PROC}, set()),
    "torch_save_evil.pt": ({PROC}, set()),  # torch.save of an object whose __reduce__ is the payload
    "numpy_save_evil.npy": ({OBJ_ARRAY, PROC}, set()),  # numpy.save of an object array holding it
}

SUSPICIOUS = {
    "unknown_class.pkl": (Verdict.APPROVED, {"MLG-PKL-012"}),
    "torchscript_custom_ops.pt": (Verdict.APPROVED, {"MLG-PT-002"}),
    "stdlib_unknown.pkl": (Verdict.QUARANTINED, {"MLG-PKL-011"}),
    "torch_legacy_tar_benign.tar": (Verdict.QUARANTINED, {"MLG-PT-003"}),
}


def test_every_fixture_has_an_expectation():
    for folder, expected in (("benign", BENIGN), ("malicious", MALICIOUS), ("suspicious", SUSPICIOUS)):
        on_disk = {p.name for p in (FIXTURES / folder).iterdir()}
        assert on_disk == set(expected), f"{folder}: fixtures and expectations differ"


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_files_are_approved(name: str):
    verdict, findings, complete = verdict_of(FIXTURES / "benign" / name)
    assert verdict is Verdict.APPROVED, [f.to_dict() for f in findings]
    assert complete
    assert rules(findings) == BENIGN[name]


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_files_are_quarantined_with_exact_rules(name: str):
    verdict, findings, _complete = verdict_of(FIXTURES / "malicious" / name)
    mine, others = MALICIOUS[name]
    assert verdict is Verdict.QUARANTINED
    assert rules(findings) == mine, [f.to_dict() for f in findings]
    assert others <= rules(findings, mine=False)


@pytest.mark.parametrize("name", sorted(SUSPICIOUS))
def test_suspicious_files(name: str):
    verdict, findings, complete = verdict_of(FIXTURES / "suspicious" / name)
    expected_verdict, expected_rules = SUSPICIOUS[name]
    assert (verdict, rules(findings)) == (expected_verdict, expected_rules)
    assert complete


def _offset_of(data: bytes, opname: str, nth: int = 0) -> int:
    hits = [pos for op, _arg, pos in pickletools.genops(io.BytesIO(data)) if op.name == opname]
    return hits[nth]


def test_message_names_the_call_and_the_exact_offset():
    path = FIXTURES / "malicious" / "reduce_os_system.pkl"
    _verdict, findings, _ = verdict_of(path)
    (finding,) = by_rule(findings, PROC)
    assert finding.message == "call to os.system('touch /tmp/mlgate-canary/reduce_os_system.pkl') when unpickled"
    assert finding.location == f"reduce_os_system.pkl@{_offset_of(path.read_bytes(), 'REDUCE')}"
    assert finding.severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("dotted_torch.pkl", "torch.serialization.os.system"),
        ("dotted_pathlib.pkl", "pathlib.os.system"),
        ("posix_system.pkl", "posix.system"),
        ("nt_system.pkl", "nt.system"),
    ],
)
def test_name_tricks_resolve_to_the_real_target(name: str, written: str):
    _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / name)
    (finding,) = by_rule(findings, PROC)
    assert finding.message.startswith("call to os.system(")
    assert f"(written as {written})" in finding.message


def test_popped_call_and_call_before_garbage_still_count():
    for name in ("popped_call.pkl", "payload_then_garbage.pkl", "payload_then_eof.pkl"):
        _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / name)
        assert any("os.system('touch /tmp/mlgate-canary/" in f.message for f in by_rule(findings, PROC)), name


def test_truncated_stream_marks_the_scan_incomplete():
    for name in ("payload_then_eof.pkl", "payload_then_garbage.pkl"):
        _verdict, findings, complete = verdict_of(FIXTURES / "malicious" / name)
        assert not complete
        (broken,) = by_rule(findings, BROKEN)
        assert broken.incomplete


def test_duplicate_torch_record_names_the_copy_torch_reads():
    _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / "torch_duplicate_datapkl.pt")
    (dup,) = by_rule(findings, "MLG-PT-001")
    assert "torch.load reads the first (central-directory entry" in dup.message
    assert dup.location == "torch_duplicate_datapkl.pt!archive/data.pkl"
    (call,) = by_rule(findings, PROC)
    assert call.location.startswith("torch_duplicate_datapkl.pt!archive/data.pkl#2@")


def test_code_objects_list_the_names_they_use():
    _verdict, findings, _ = verdict_of(FIXTURES / "benign" / "cloudpickle_function.pkl")
    messages = [f.message for f in by_rule(findings, CODE)]
    assert any("uses os, path, join" in m for m in messages)
    assert all(f.severity is Severity.MEDIUM for f in by_rule(findings, CODE))
    _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / "cloudpickle_evil_function.pkl")
    (evil,) = by_rule(findings, CODE)
    assert evil.severity is Severity.CRITICAL and "system" in evil.message


def test_frame_divergence_is_reported_with_the_reading_that_runs_the_payload():
    _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / "frame_discard.pkl")
    (call,) = by_rule(findings, PROC)
    assert "as read by pickle.load on an io.BytesIO (torch.load)" in call.message
    (frame,) = by_rule(findings, FRAME)
    assert "crosses" in frame.message or "across the FRAME end" in frame.message


def test_nested_payload_findings_carry_the_child_location():
    _verdict, findings, _ = verdict_of(FIXTURES / "malicious" / "nested_base64.pkl")
    (inner,) = by_rule(findings, PROC)
    assert inner.location.startswith("nested_base64.pkl!loads@")
    assert "nested_base64.pkl" in inner.message


ENCODED = {
    "joblib_evil_lz4.joblib",
    "joblib_evil_zlib.joblib",
    "nested_base64.pkl",
    "nested_hex.pkl",
    "nested_zlib.pkl",
}


def test_every_malicious_payload_targets_its_own_canary():
    """If a payload ever ran, tests/conftest.py would find /tmp/mlgate-canary/<fixture name>."""
    for path in sorted((FIXTURES / "malicious").iterdir()):
        if path.name not in ENCODED:  # those carry it compressed or encoded
            assert f"/tmp/mlgate-canary/{path.name}".encode() in path.read_bytes(), path.name
