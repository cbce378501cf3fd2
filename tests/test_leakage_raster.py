"""causal-leakage for autoregressive image models trained with their input as target: a PixelCNN whose first masked
convolution has mask type "B" reads the pixel it predicts and fires; type "A" and a conv autoencoder stay silent."""

import torch
import torch.nn.functional as F
from helpers import digits, fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning as L
from lightning_sanity import SanitySummary
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.checks.raster_causal import raster_self_read


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super().__init__(*args, **kwargs)
        k = self.kernel_size[0]
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (mask_type == "B"):] = 0
        mask[:, :, k // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, self.stride, self.padding)


class Binarized(L.LightningModule):
    """Bernoulli logits per pixel of binarized digits, the image as input and target."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return F.binary_cross_entropy_with_logits(self(x), x)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def pixelcnn(first_mask):
    return nn.Sequential(MaskedConv2d(first_mask, 1, 16, 5, padding=2), nn.ReLU(),
                         MaskedConv2d("B", 16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 1))


def _report(tmp_path, net):
    x = (digits(128)[0].view(-1, 1, 8, 8) > 8).float()
    t = fit(Binarized(net), tmp_path, DataLoader(TensorDataset(x), batch_size=32), None,
            callbacks=[LeakageChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2)
    report = read_report(t.log_dir)
    return report, next(c for c in report["checks"] if c["name"] == "causal-leakage")


def test_pixelcnn_first_layer_type_b_reads_its_own_pixel(tmp_path):
    report, status = _report(tmp_path, pixelcnn("B"))
    (finding,) = serious(report, "causal-leakage")
    assert status["status"] == "fail" and finding["data"]["position"] == [4, 4]
    assert "reads the value it must predict" in finding["message"] and "'A'" in finding["advice"]


def test_pixelcnn_type_a_and_a_conv_autoencoder_are_silent(tmp_path):
    report, status = _report(tmp_path / "a", pixelcnn("A"))
    assert serious(report) == [] and status["status"] == "pass" and "own input pixel" in status["detail"]
    autoencoder = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    report, status = _report(tmp_path / "ae", autoencoder)
    assert serious(report) == [] and status["status"] == "skipped"  # reads later pixels: not autoregressive


def test_a_per_pixel_model_without_context_is_not_autoregressive():
    x = (torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    result = raster_self_read(lambda t: 2 * t, x, torch.Generator().manual_seed(1))
    assert result.kind == "no-context"


class MaskedLinear(nn.Linear):
    def __init__(self, mask):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


def made(strict_output: bool, d: int = 64, hidden: int = 128):
    """A MADE over the pixels in their order: hidden masks ``>=``, the output mask ``>`` (strict) or ``>=`` (the leak)."""
    g = torch.Generator().manual_seed(0)
    deg_in = torch.arange(1, d + 1)
    deg_h = torch.randint(1, d, (hidden,), generator=g)
    out_mask = deg_in[:, None] > deg_h[None] if strict_output else deg_in[:, None] >= deg_h[None]
    return nn.Sequential(MaskedLinear(deg_h[:, None] >= deg_in[None]), nn.ReLU(), MaskedLinear(out_mask))


def _flat_report(tmp_path, net):
    x = (digits(128)[0] > 8).float()
    t = fit(Binarized(net), tmp_path, DataLoader(TensorDataset(x), batch_size=32), None,
            callbacks=[LeakageChecks(), SanitySummary(print_summary=False)], max_epochs=1, limit_train_batches=2)
    report = read_report(t.log_dir)
    return report, next(c for c in report["checks"] if c["name"] == "causal-leakage")


def test_made_output_mask_with_the_non_strict_inequality_reads_its_own_pixel(tmp_path):
    report, status = _flat_report(tmp_path / "leak", made(strict_output=False))
    (finding,) = serious(report, "causal-leakage")
    assert finding["data"]["position"] == [32] and "MADE" in finding["advice"]
    report, status = _flat_report(tmp_path / "strict", made(strict_output=True))
    assert serious(report) == [] and status["status"] == "pass"
    report, status = _flat_report(tmp_path / "mlp", nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 64)))
    assert serious(report) == [] and status["status"] == "skipped"  # a dense autoencoder reads every pixel
