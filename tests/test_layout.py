"""NHWC networks stay NHWC (no layout copies in a training step), and flattening in (h, w, c) order
changes no seed's starting function."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import profile

from mtlbench.models import build_dedicated
from mtlbench.models.dedicated import keras_init_
from mtlbench.models.layout import FlattenHWC, nhwc, with_chw_flatten
from mtlbench.models.store import ModelFileError, load_model, save_model
from mtlbench.train.epoch import to_channels_last


@pytest.mark.parametrize("arch, shape", [("cnn28", (1, 12, 12)), ("cifar_shared", (3, 16, 16))])
def test_hwc_flatten_starts_from_the_function_a_chw_flatten_had_with_the_same_seed(arch, shape):
    model = build_dedicated(arch, shape, 10, seed=7).eval()
    chw = with_chw_flatten(copy.deepcopy(model))
    assert not any(isinstance(m, FlattenHWC) for m in chw.modules())
    keras_init_(chw, torch.Generator().manual_seed(7))  # draws in the same order, nothing reordered
    dense = lambda m: next(p for p in m.parameters() if p.dim() == 2)  # noqa: E731
    assert not torch.equal(dense(model), dense(chw))  # the weights are laid out differently...
    x = torch.rand(5, *shape, generator=torch.Generator().manual_seed(0))
    out, ref = model(x), chw(x)
    out, ref = (out[0], ref[0]) if isinstance(out, tuple) else (out, ref)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-6)  # ...to compute the same function


def test_one_channel_tensors_get_nhwc_strides():
    w = torch.rand(32, 1, 3, 3)
    assert w.contiguous(memory_format=torch.channels_last).stride() == (9, 9, 3, 1)  # PyTorch keeps NCHW
    v = nhwc(w)
    assert v.stride() == (9, 1, 3, 1) and torch.equal(v, w) and nhwc(v) is v
    y = F.conv2d(torch.rand(2, 1, 8, 8), nhwc(w), padding="same")
    assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()


def test_a_channels_last_cnn28_step_copies_no_activations():
    torch.manual_seed(0)
    batch = 6
    model = build_dedicated("cnn28", (1, 10, 10), 10, seed=0)
    to_channels_last(model)
    x, y = nhwc(torch.rand(batch, 1, 10, 10)), torch.randint(0, 10, (batch,))
    with profile(record_shapes=True) as prof:
        F.cross_entropy(model(x), y).backward()
    layout_copies = [(e.name, e.input_shapes[0]) for e in prof.events()
                     if e.name in ("aten::copy_", "aten::clone", "aten::contiguous")
                     and e.input_shapes and len(e.input_shapes[0]) == 4 and e.input_shapes[0][0] == batch]
    assert layout_copies == []
    assert all(p.grad is not None for p in model.parameters())


def test_a_model_file_from_before_hwc_flattening_is_refused_by_name(tmp_path):
    model = build_dedicated("cnn28", (1, 10, 10), 10, seed=0)
    spec = {"architecture": "cnn28", "in_shape": [1, 10, 10], "n_classes": 10}
    save_model(tmp_path / "new.pt", model, spec)
    assert torch.equal(load_model(tmp_path / "new.pt")[-1].weight, model[-1].weight)
    old = torch.load(tmp_path / "new.pt", weights_only=True)
    del old["format"]  # what mtlbench wrote before the format number existed
    torch.save(old, tmp_path / "old.pt")
    with pytest.raises(ModelFileError, match=r"old\.pt is a format-1 model file.*retrain"):
        load_model(tmp_path / "old.pt")
