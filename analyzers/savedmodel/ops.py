"""The TensorFlow op catalogue: which ops touch files, the network, the process or Python.

Input positions are the op's positional data inputs in TF 2.21's registry
(``tests/fixtures/keras_tf/dump_tf_ops.py`` dumps them); ``path_attrs`` are
attributes that carry a path or URL. ``REGISTERED_OPS`` is every op TF 2.21
registers, so anything else is a custom op that needs a native library.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


class OpClass(enum.Enum):
    READ = "reads a file"
    WRITE = "writes a file"
    LIST = "lists files"
    PRINT = "prints to a file"
    DEBUG = "sends tensors to a debugger URL"
    NETWORK = "opens a network or cluster connection"
    FSCONFIG = "reconfigures a filesystem plugin"
    PYFUNC = "calls back into host Python"
    HIDDEN = "runs a graph hidden in a string constant"
    ABORT = "aborts the process"


@dataclass(frozen=True)
class OpInfo:
    cls: OpClass
    path_inputs: tuple[int, ...] = ()
    path_attrs: tuple[str, ...] = ()
    checkpoint: bool = False  # normal inside the saver's save/restore functions


def _table() -> dict[str, OpInfo]:
    table: dict[str, OpInfo] = {}

    def add(
        cls: OpClass,
        names: str,
        path_inputs: tuple[int, ...] = (),
        path_attrs: tuple[str, ...] = (),
        checkpoint: bool = False,
    ) -> None:
        for name in names.split():
            table[name] = OpInfo(cls, path_inputs, path_attrs, checkpoint)

    add(OpClass.READ, "ReadFile", (0,))
    add(OpClass.WRITE, "WriteFile", (0,))
    add(OpClass.LIST, "MatchingFiles MatchingFilesDataset ExperimentalMatchingFilesDataset", (0,))
    add(OpClass.WRITE, "Save SaveSlices SaveV2", (0,), checkpoint=True)
    add(OpClass.READ, "Restore RestoreSlice RestoreV2", (0,), checkpoint=True)
    add(OpClass.WRITE, "MergeV2Checkpoints", (0, 1), checkpoint=True)
    add(OpClass.READ, "LoadAndRemapMatrix", (0,))
    add(OpClass.READ, "GenerateVocabRemapping", (0, 1))
    add(OpClass.PRINT, "PrintV2", path_attrs=("output_stream",))
    add(
        OpClass.DEBUG,
        "DebugIdentity DebugIdentityV2 DebugIdentityV3 DebugNanCount DebugNumericSummary",
        path_attrs=("debug_urls",),
    )
    add(OpClass.PYFUNC, "PyFunc PyFuncStateless EagerPyFunc")
    add(
        OpClass.READ,
        "TFRecordDataset TFRecordDatasetV2 FixedLengthRecordDataset FixedLengthRecordDatasetV2 TextLineDataset",
        (0,),
    )
    add(OpClass.READ, "CSVDataset CSVDatasetV2 ExperimentalCSVDataset LMDBDataset ExperimentalLMDBDataset", (0,))
    add(OpClass.READ, "SqlDataset ExperimentalSqlDataset", (1,))
    add(OpClass.READ, "LoadDataset SnapshotDatasetReader SnapshotChunkDataset ListSnapshotChunksDataset", (0,))
    add(OpClass.WRITE, "DatasetToTFRecord ExperimentalDatasetToTFRecord SaveDataset SaveDatasetV2", (1,))
    add(OpClass.WRITE, "SnapshotDataset SnapshotDatasetV2 CacheDataset CacheDatasetV2", (1,))
    add(OpClass.WRITE, "DistributedSave", (1, 2))
    add(
        OpClass.READ,
        "WholeFileReader WholeFileReaderV2 TextLineReader TextLineReaderV2 TFRecordReader TFRecordReaderV2",
    )
    add(OpClass.READ, "FixedLengthRecordReader FixedLengthRecordReaderV2 IdentityReader IdentityReaderV2 LMDBReader")
    add(OpClass.READ, "RecordInput", path_attrs=("file_pattern",))
    add(OpClass.WRITE, "CreateSummaryFileWriter CreateSummaryDbWriter", (1,))
    add(OpClass.WRITE, "WriteSummary WriteScalarSummary WriteRawProtoSummary WriteGraphSummary WriteImageSummary")
    add(OpClass.WRITE, "WriteAudioSummary WriteHistogramSummary ImportEvent FlushSummaryWriter CloseSummaryWriter")
    add(OpClass.WRITE, "StatsAggregatorSetSummaryWriter")
    add(OpClass.READ, "InitializeTableFromTextFile InitializeTableFromTextFileV2", (1,))
    add(OpClass.READ, "ImmutableConst", path_attrs=("memory_region_name",))
    add(OpClass.READ, "DecodeProtoV2 EncodeProto", path_attrs=("descriptor_source",))
    add(OpClass.FSCONFIG, "FileSystemSetConfiguration", (0,))
    add(OpClass.NETWORK, "DataServiceDataset DataServiceDatasetV2 DataServiceDatasetV3 DataServiceDatasetV4", (2,))
    add(OpClass.NETWORK, "RegisterDataset RegisterDatasetV2", (1,))
    add(
        OpClass.NETWORK,
        "CollectiveReduceV2 CollectiveReduceV3 CollectiveGatherV2 CollectiveBcastSendV2 CollectiveBcastRecvV2",
    )
    add(OpClass.NETWORK, "CollectiveAllToAllV2 CollectiveAllToAllV3 CollectiveInitializeCommunicator CollectiveReduce")
    add(
        OpClass.NETWORK,
        "CollectiveGather CollectiveBcastSend CollectiveBcastRecv CollectivePermute Send Recv _Send _Recv",
    )
    # Ops whose file name, pattern or address sits in an attribute or an input the lists above missed
    # (every op of TF 2.21's registry with a filename/path/pattern/url/address argument is covered).
    add(OpClass.READ, "FixedUnigramCandidateSampler", path_attrs=("vocab_file",))
    add(OpClass.READ, "Skipgram", path_attrs=("filename",))
    add(OpClass.WRITE, "DumpTensor", path_attrs=("log_dir_path", "file_name"))
    add(OpClass.WRITE, "CalibrationStatisticsSaver", path_attrs=("output_file_path",))
    add(OpClass.READ, "DTensorRestoreV2", (0,), checkpoint=True)
    add(OpClass.NETWORK, "RpcClient RpcServer", (0,))
    add(OpClass.HIDDEN, "DatasetFromGraph", (0,))
    add(OpClass.ABORT, "Abort")
    return table


CATALOGUE: dict[str, OpInfo] = _table()

# Values of path attributes that are the op's harmless default.
BENIGN_ATTR_VALUES: dict[str, frozenset[str]] = {
    "output_stream": frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)", ""}),
    "descriptor_source": frozenset({"local://", ""}),
    "vocab_file": frozenset({""}),  # FixedUnigramCandidateSampler draws from `unigrams` instead
}
# An empty filename means "cache in memory" for CacheDataset(V2).
MEMORY_WHEN_EMPTY = frozenset({"CacheDataset", "CacheDatasetV2"})

# Ops of well-known native libraries (TF-Text, SentencePiece): legitimate, but the server needs the library.
KNOWN_LIBRARY_OPS: dict[str, str] = {
    **dict.fromkeys(
        "CaseFoldUTF8 NormalizeUTF8 NormalizeUTF8WithOffsetsMap RegexSplitWithOffsets WordpieceTokenizeWithOffsets "
        "WhitespaceTokenizeWithOffsets WhitespaceTokenizeWithOffsetsV2 UnicodeScriptTokenizeWithOffsets "
        "FastWordpieceTokenizeWithOffsets FastBertNormalize SplitMergeTokenizeWithOffsets "
        "SentenceFragmentsV2 NgramsStringJoin".split(),
        "tensorflow-text",
    ),
    **dict.fromkeys(
        "SentencepieceOp SentencepieceTokenizeOp SentencepieceDetokenizeOp SentencepieceIdToStringOp "
        "SentencepieceStringToIdOp SentencepieceGetPieceSizeOp".split(),
        "sentencepiece (tensorflow-text)",
    ),
}
TFIO_PREFIX = "IO>"
# First CamelCase word of tensorflow-io op names that talk to the network.
TFIO_NETWORK_WORDS = frozenset(
    {
        "Kafka",
        "Kinesis",
        "Pubsub",
        "PubSub",
        "Http",
        "Grpc",
        "Mongo",
        "MongoDB",
        "Bigquery",
        "BigQuery",
        "Bigtable",
        "Elasticsearch",
        "Pulsar",
        "Mqtt",
        "Ignite",
    }
)
_CAMEL_WORD = re.compile(r"[A-Z][a-z0-9]*|[a-z0-9]+")


@cache
def registered_ops() -> frozenset[str]:
    """Every op TensorFlow 2.21 registers (committed list; no TF import)."""
    data = resources.files("mlgate.analyzers.savedmodel").joinpath("tf_registered_ops.txt").read_text()
    return frozenset(line.strip() for line in data.splitlines() if line.strip())


def tfio_is_network(op: str) -> bool:
    """Whether a tensorflow-io (``IO>...``) op's first name word is a network system."""
    words = _CAMEL_WORD.findall(op[len(TFIO_PREFIX) :])
    return bool(words) and words[0] in TFIO_NETWORK_WORDS
