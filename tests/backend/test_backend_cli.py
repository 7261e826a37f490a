"""``tilepipe lower`` prints a valid FILE that other commands accept; ``tilepipe cuda``
prints CUDA C++; backend errors exit 2 with the message, never a traceback."""

import cuda_programs as programs
from tilepipe.cli import main


def write(tmp_path, text, name="kernel.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_lower_prints_a_program_that_verifies(tmp_path, capsys):
    path = write(tmp_path, programs.EXCHANGE)
    assert main(["lower", path, "--no-pipeline", "--target", "cuda"]) == 0
    lowered = capsys.readouterr().out
    assert lowered.startswith("from tilepipe import script as T")
    assert lowered.count('T.tvm_storage_sync("shared"') == 3
    again = write(tmp_path, lowered, "lowered.py")
    assert main(["verify", again, "--no-pipeline"]) == 0
    assert "no race" in capsys.readouterr().out
    assert main(["lower", again, "--no-pipeline"]) == 0
    assert capsys.readouterr().out == lowered


def test_cuda_prints_kernel(tmp_path, capsys):
    path = write(tmp_path, programs.TWO_QUEUES)
    assert main(["cuda", path, "--no-pipeline", "--arch", "sm_90"]) == 0
    source = capsys.readouterr().out
    assert "for sm_90" in source
    assert source.count("cp_async<16>(") == 4
    assert "cp_async_wait_group<4>();" in source


def test_cuda_error_names_the_statement(tmp_path, capsys):
    text = programs.EXCHANGE.replace("B[0, tx, v] = A[tx, v]", "B[0, tx, v] = A[tx, v + 1]")
    path = write(tmp_path, text)
    assert main(["cuda", path, "--no-pipeline"]) == 2
    error = capsys.readouterr().err
    assert "kernel.py:11:" in error
    assert "not provably aligned to 16 bytes" in error
    assert "Traceback" not in error
