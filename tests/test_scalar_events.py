"""The suite's scalars reach TensorBoard as one event per logging step (one writer-queue wake-up, not one per tag),
read back by TensorBoard like separate ones; other loggers still get them through ``log_metrics``."""

import glob

from helpers import Classifier, fit
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New

from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary


def _events(path):
    reader = PyRecordReader_New(path)
    while True:
        try:
            reader.GetNext()
        except Exception:
            return
        yield Event.FromString(reader.record())


def test_norm_scalars_are_one_event_per_logging_step(tmp_path):
    t = fit(Classifier(), tmp_path, callbacks=[NormMonitor(), SanitySummary(print_summary=False)], max_epochs=1,
            logger="both")
    (path,) = glob.glob(f"{t.loggers[0].log_dir}/events.out.tfevents.*")
    norm_events = [e for e in _events(path) if any(v.tag.startswith("sanity/grad_norm/") for v in e.summary.value)]
    assert norm_events and all(len(e.summary.value) > 3 for e in norm_events)
    acc = EventAccumulator(t.loggers[0].log_dir)
    acc.Reload()
    points = acc.Scalars("sanity/grad_norm/global")
    assert [p.step for p in points] == sorted({e.step for e in norm_events})
    assert all(p.value > 0 for p in points)
    with open(glob.glob(f"{t.loggers[1].log_dir}/metrics.csv")[0]) as f:
        assert "sanity/grad_norm/global" in f.readline()  # the CSV logger still gets them
