from lollms_server.bindings.torch_support import budget_of, default_dtype


def test_budget_and_dtype_per_device() -> None:
    assert [budget_of(d) for d in ("cpu", "mps", "cuda", "cuda:1")] == [
        "cpu",
        "cpu",
        "gpu",
        "gpu:1",
    ]
    assert default_dtype("auto", "cpu") == "float32"
    assert default_dtype("auto", "cuda:0") == "float16"
    assert default_dtype("bfloat16", "cpu") == "bfloat16"
