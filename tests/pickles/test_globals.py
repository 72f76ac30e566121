"""Name resolution like ``find_class`` and the three policy tiers (allowed, denied, unknown)."""

from __future__ import annotations

import pytest

from mlgate.analyzers.pickles.names import Tier, allowed, classify
from mlgate.analyzers.pickles.packs import DENIED, PACKS, Category


@pytest.mark.parametrize(
    ("module", "name", "target", "category"),
    [
        ("os", "system", "os.system", Category.PROCESS),
        ("posix", "system", "os.system", Category.PROCESS),  # platform module aliases
        ("nt", "system", "os.system", Category.PROCESS),
        ("__builtin__", "eval", "builtins.eval", Category.EXEC),  # Python 2 names
        ("_pickle", "loads", "pickle.loads", Category.NESTED),  # C accelerator modules
        ("cPickle", "loads", "pickle.loads", Category.NESTED),
        ("_operator", "attrgetter", "operator.attrgetter", Category.DYNAMIC),
        ("_io", "FileIO", "io.FileIO", Category.FILESYSTEM),
        ("commands", "getoutput", "subprocess.getoutput", Category.PROCESS),
        ("torch", "serialization.os.system", "os.system", Category.PROCESS),  # dotted walks
        ("pathlib", "os.system", "os.system", Category.PROCESS),
        ("shutil", "os.system", "os.system", Category.PROCESS),  # the worst hop wins over shutil's own
        (
            "asyncio.unix_events",
            "_UnixSubprocessTransport._start",
            "asyncio.unix_events._UnixSubprocessTransport._start",
            Category.PROCESS,
        ),  # parent package denied
        ("aiohttp.client", "ClientSession", "aiohttp.client.ClientSession", Category.NETWORK),
        (
            "torch.utils._config_module",
            "ConfigModule.load_config",
            "torch.utils._config_module.ConfigModule.load_config",
            Category.NESTED,
        ),
        (
            "transformers.models.bert.modeling_bert",
            "BertModel.from_pretrained",
            "transformers.models.bert.modeling_bert.BertModel.from_pretrained",
            Category.NESTED,
        ),
        ("fickling.fickle", "Pickled", "fickling.fickle.Pickled", Category.SCANNER),
        ("os", "", "os", Category.PROCESS),  # a module reference
    ],
)
def test_denied_names_resolve_to_their_target(module: str, name: str, target: str, category: Category):
    res = classify(module, name)
    assert (res.tier, res.dotted, res.category) == (Tier.DENIED, target, category)


@pytest.mark.parametrize(
    ("module", "name", "tier"),
    [
        ("collections", "OrderedDict", Tier.ALLOWED),
        ("torch._utils", "_rebuild_tensor_v2", Tier.ALLOWED),
        ("torch.nn.modules.linear", "Linear", Tier.ALLOWED),  # subtree pack
        ("torch.nn.modules.linear", "Linear.extra_repr", Tier.UNKNOWN),  # subtrees allow plain names only
        ("__builtin__", "xrange", Tier.ALLOWED),  # fix_imports: builtins.range
        ("copy_reg", "_reconstructor", Tier.ALLOWED),
        ("numpy._core.multiarray", "_reconstruct", Tier.ALLOWED),
        ("sklearn.tree._classes", "DecisionTreeClassifier", Tier.ALLOWED),
        ("sklearn.datasets", "fetch_openml", Tier.DENIED),  # downloads: denied by behaviour (network fetch)
        ("sklearn.datasets._base", "Bunch", Tier.UNKNOWN),  # not every sklearn module is a pack
        ("email.message", "Message", Tier.STDLIB),  # stdlib gadgets are the usual bypass: high
        ("collections", "OrderedDict.fromkeys", Tier.STDLIB),
        ("acme_models.layers", "Gadget", Tier.UNKNOWN),
        ("acme_models", "helpers.json.JSONDecoder", Tier.CROSSING),  # walks into the json module
        (None, None, Tier.UNRESOLVED),
    ],
)
def test_tiers(module, name, tier):
    assert classify(module, name).tier is tier


def test_every_pack_entry_has_a_reason():
    for pack in PACKS:
        for entry in pack.entries:
            assert entry.reason.strip() and "\n" not in entry.reason, entry


def test_deny_wins_over_allow():
    for deny in DENIED:
        for name in deny.names or ("anything",):
            assert allowed(deny.module, name) is None or classify(deny.module, name).tier is Tier.DENIED
