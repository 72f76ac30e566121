"""Time SavedModel parsing + analysis on synthetic graphs of 1k/2k/4k functions (linear-time check).

    python3 bench/savedmodel_parse.py [--functions 1000 2000 4000] [--repeat 3]

Each synthetic model is built with mlgate's own schema (no TensorFlow): a serving
signature calls a chain of functions, every function has 12 nodes (MatMul,
ReadVariableOp, StringJoin of constants, ...), every 50th one calls a
tf.cond-style branch function, and one function deep in the chain reads a
constant path, so reachability, call-graph and path resolution all do real work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mlgate.analyzers.core.walker import scan_path
from mlgate.analyzers.savedmodel import schema


def build(n: int) -> bytes:
    model = schema.SavedModel()
    mg = model.meta_graphs.add()
    sig = mg.signature_def.add(key=b"serving_default")
    sig.value.inputs.add(key=b"x").value.name = b"serving_default_x:0"
    sig.value.outputs.add(key=b"y").value.name = b"call:0"
    mg.graph_def.node.add(name=b"serving_default_x", op=b"Placeholder")
    call = mg.graph_def.node.add(name=b"call", op=b"StatefulPartitionedCall", input=[b"serving_default_x"])
    call.attr.add(key=b"f").value.func.name = b"fn_0"
    library = mg.graph_def.library
    for i in range(n):
        fn = library.function.add()
        fn.signature.name = f"fn_{i}".encode()
        fn.signature.input_arg.add(name=b"x")
        fn.signature.output_arg.add(name=b"out")
        nodes = fn.node_def
        for j in range(4):
            c = nodes.add(name=f"c{j}".encode(), op=b"Const")
            v = c.attr.add(key=b"value").value.tensor
            v.dtype = schema.DT_STRING
            v.string_val.append(f"part{j}".encode())
        nodes.add(name=b"join", op=b"StringJoin", input=[b"c0:output:0", b"c1:output:0", b"c2:output:0"])
        nodes.add(name=b"w", op=b"ReadVariableOp", input=[b"x"])
        nodes.add(name=b"mm", op=b"MatMul", input=[b"x", b"w:value:0"])
        nodes.add(name=b"relu", op=b"Relu", input=[b"mm:product:0"])
        if i + 1 < n:
            nxt = nodes.add(name=b"next", op=b"StatefulPartitionedCall", input=[b"relu:activations:0"])
            nxt.attr.add(key=b"f").value.func.name = f"fn_{i + 1}".encode()
        if i % 50 == 0 and i + 2 < n:
            branch = nodes.add(name=b"cond", op=b"StatelessIf", input=[b"c3:output:0", b"x"])
            branch.attr.add(key=b"then_branch").value.func.name = f"fn_{i + 2}".encode()
            branch.attr.add(key=b"else_branch").value.func.name = f"fn_{i + 1}".encode()
        if i == n // 2:
            path = nodes.add(name=b"path", op=b"Const")
            t = path.attr.add(key=b"value").value.tensor
            t.dtype = schema.DT_STRING
            t.string_val.append(b"/etc/hostname")
            nodes.add(name=b"ReadFile", op=b"ReadFile", input=[b"path:output:0"])
        nodes.add(name=b"Identity", op=b"Identity", input=[b"relu:activations:0"])
        fn.ret.add(key=b"out", value=b"Identity:output:0")
    return model.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'functions':>9} {'pb bytes':>10} {'best s':>8} {'us/function':>12} findings")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.functions:
            data = build(n)
            target = Path(tmp) / f"m{n}"
            target.mkdir()
            (target / "saved_model.pb").write_bytes(data)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                result = scan_path(target, label=f"m{n}")
                times.append(time.perf_counter() - start)
            best = min(times)
            rules = sorted({f.rule for f in result.findings})
            print(f"{n:>9} {len(data):>10} {best:>8.3f} {best / n * 1e6:>12.1f} {rules}")


if __name__ == "__main__":
    main()
