"""A model with a ``torch.compile``-d part (the ``aot_eager`` backend: dynamo and AOTAutograd as inductor uses them,
without a C++ build): the probes run the original module, nothing is hooked inside the compiled one, and the run
ends with the weights it has without the suite."""

import lightning as L
import torch
from helpers import Classifier, digits_loaders, read_report, trainer
from torch import nn

import lightning_sanity


def _run(tmp_path, callbacks):
    L.seed_everything(0)
    model = Classifier(net=nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Dropout(0.2), nn.Linear(48, 10)))
    model.net = torch.compile(model.net, backend="aot_eager")
    train, val = digits_loaders(n=384)
    t = trainer(tmp_path, callbacks, max_epochs=2)
    t.fit(model, train, val)
    return t, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_compiled_submodule_is_probed_eagerly_without_observer_effect(tmp_path):
    _, bare = _run(tmp_path / "bare", [])
    t, watched = _run(tmp_path / "watched", lightning_sanity.default_callbacks(print_summary=False))
    for name in bare:
        assert torch.equal(bare[name], watched[name]), f"{name} differs with the suite attached"
    checks = {c["name"]: c for c in read_report(t.log_dir)["checks"]}
    # The per-sample gradient probe retains its graph, which compiled backward functions refuse: it runs eagerly.
    assert checks["batch-mixing"]["status"] == "pass"
    assert checks["dead-activations"]["status"] == "skipped" and "torch.compile" in checks["dead-activations"]["detail"]
    assert not [c for c in checks.values() if c["status"] in ("warn", "fail")]
