"""The trace contract, and the run / verify / trace commands."""

import json

import numpy as np

from tilepipe import cli
from tilepipe.sim import random_inputs, simulate, trace

import sim_programs as programs


def test_trace_of_one_thread_follows_the_contract():
    func = programs.load(programs.pipelined(1))
    body_wait, epilogue_wait = [line for line, text in
                                enumerate(programs.pipelined(1).splitlines(), 1)
                                if "async_wait_queue_scope" in text]
    t = 3
    expected = [{"ev": "issue", "queue": 0, "buffer": "B", "index": [0, t, 0],
                 "access": "write"}, {"ev": "commit", "queue": 0}]
    for i in range(15):
        expected += [
            {"ev": "issue", "queue": 0, "buffer": "B", "index": [(i + 1) % 2, t, 0],
             "access": "write"},
            {"ev": "commit", "queue": 0},
            {"ev": "wait", "queue": 0, "in_flight": 1, "site": body_wait, "unroll": []},
            {"ev": "read", "buffer": "B", "index": [i % 2, t, 0]},
            {"ev": "write", "buffer": "C", "index": [t, i]},
        ]
    expected += [
        {"ev": "wait", "queue": 0, "in_flight": 0, "site": epilogue_wait, "unroll": [0]},
        {"ev": "read", "buffer": "B", "index": [1, t, 0]},
        {"ev": "write", "buffer": "C", "index": [t, 15]},
    ]
    assert list(trace(func, thread=t)) == expected


def test_trace_shows_barriers_and_async_reads_outside_global_memory():
    text = programs.HEADER + '''@T.prim_func
def stage(A: T.Buffer((2,), "float32"), C: T.Buffer((2,), "float32")):
    for tx in T.thread_binding(2, thread="threadIdx.x"):
        with T.block():
            S = T.alloc_buffer((2,), "float32", scope="shared")
            S[tx] = A[tx]
            T.tvm_storage_sync("shared")
            with T.attr(0, "async_commit_queue_scope", 1):
                with T.attr(0, "async_scope", 1):
                    C[tx] = S[1 - tx]
            with T.attr(0, "async_wait_queue_scope", 1):
                with T.attr(0, "async_wait_inflight_count", 0):
                    T.evaluate(0)
'''
    site = text.splitlines().index(
        '            with T.attr(0, "async_wait_queue_scope", 1):') + 1
    events = list(trace(programs.load(text), thread=1))
    assert events == [
        {"ev": "read", "buffer": "A", "index": [1]},
        {"ev": "write", "buffer": "S", "index": [1]},
        {"ev": "barrier"},
        {"ev": "issue", "queue": 1, "buffer": "S", "index": [0], "access": "read"},
        {"ev": "issue", "queue": 1, "buffer": "C", "index": [1], "access": "write"},
        {"ev": "commit", "queue": 1},
        {"ev": "wait", "queue": 1, "in_flight": 0, "site": site, "unroll": []},
    ]


def _write(tmp_path, text, name="program.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_trace_command_names_the_printed_lines(tmp_path, capsys):
    path = _write(tmp_path, programs.pipelined(2))
    assert cli.main(["show", path]) == 0
    shown = capsys.readouterr().out.splitlines()
    wait_lines = [line for line, text in enumerate(shown, 1) if "async_wait_queue_scope" in text]
    assert cli.main(["trace", path, "--no-pipeline", "--thread", "5"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sites = [event["site"] for event in events if event["ev"] == "wait"]
    assert set(sites) == set(wait_lines)
    assert [event["unroll"] for event in events if event["ev"] == "wait"][-2:] == [[0], [1]]
    assert all(event["index"][1] == 5 for event in events if event.get("buffer") == "B")


def test_verify_command_exit_status_and_report(tmp_path, capsys):
    clean = _write(tmp_path, programs.EXCHANGE, "clean.py")
    assert cli.main(["verify", clean, "--no-pipeline"]) == 0
    assert "no race" in capsys.readouterr().out
    racy = _write(tmp_path, programs.EXCHANGE.replace(
        '                        T.tvm_storage_sync("shared")\n', "", 1), "racy.py")
    assert cli.main(["verify", racy, "--no-pipeline"]) == 1
    report = capsys.readouterr().out
    assert "race (cross-thread)" in report and "buffer S" in report
    assert "async write at line" in report and "by thread 15" in report


def test_run_command_saves_every_buffer(tmp_path, capsys):
    path = _write(tmp_path, programs.EXCHANGE)
    out = tmp_path / "out.npz"
    assert cli.main(["run", path, "--no-pipeline", "--out", str(out), "--seed", "4",
                     "--schedule", "random:3"]) == 0
    saved = np.load(out)
    func = programs.load(programs.EXCHANGE)
    inputs = random_inputs(func, seed=4)
    assert sorted(saved.files) == ["A", "C"]
    np.testing.assert_array_equal(saved["C"], simulate(func, inputs)["C"])
    np.testing.assert_array_equal(saved["C"], programs.expected_exchange(inputs["A"]))


def test_trace_of_a_thread_that_does_not_exist(tmp_path, capsys):
    path = _write(tmp_path, programs.EXCHANGE)
    assert cli.main(["trace", path, "--no-pipeline", "--thread", "16"]) == 2
    assert "thread 16 does not exist: a block of 'exchange' has 16 thread(s)" in \
        capsys.readouterr().err
