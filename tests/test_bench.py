"""The benchmark runs end to end on a tiny size and writes its DVC metric (no speed is asserted:
speed targets live in the benchmark's numbers, not in tests)."""

import json

from mtlbench.bench import main


def test_bench_writes_metrics_for_every_model(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--device", "cpu", "--models", "mlp", "rsn2_mlp", "--rows", "600", "--repeats", "1", "--seeds", "2",
          "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"mlp", "rsn2_mlp"} and result["matmul_peak_gflops"] > 0
    for entry in result["models"].values():
        assert entry["images_per_s"] > 0 and entry["plain_images_per_s"] > 0
        assert 0 < entry["data_path_fraction"] < 1 and entry["train_gflops"] > 0
    assert result["models"]["mlp"]["stacked_images_per_s"] > 0 and "stacked_seeds" not in result["models"]["rsn2_mlp"]
    assert "mlp" in capsys.readouterr().out
