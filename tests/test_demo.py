"""``tilepipe demo`` runs end to end on a machine without a GPU, saying what it skips."""

from tilepipe.backend.cuda.compiler import find_nvcc
from tilepipe.cli import main
from tilepipe.kernels.tuning import gpu_absence_reason


def test_demo_walks_the_gemm_through_every_stage(tmp_path, capsys):
    status = main(["demo", "--out-dir", str(tmp_path)])
    out = capsys.readouterr().out
    for step in ("1. parse", "2. pipeline", "3. verify", "4. timeline", "5. CUDA"):
        assert f"ok {step}" in out, out
    assert "structurally equal" in out
    assert "stages [0, 0, 2, 3, 3] orders [0, 1, 3, 2, 4]" in out
    assert "race-free" in out
    assert "-- as written --" in out and "-- pipelined --" in out
    picture = tmp_path / "gemm_timeline.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert f"picture: {picture.resolve()}" in out
    if find_nvcc() is None:
        assert "- 6. nvcc: skipped, nvcc not found" in out
    else:
        assert "ok 6. nvcc" in out and "cubin of" in out
    reason = gpu_absence_reason()
    if reason is None:
        assert "ok 7. GPU run" in out
    else:
        assert f"- 7. GPU run: skipped, {reason}" in out
    assert status == 0
