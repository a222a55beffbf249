import os
import random
import time

import numpy as np
import pytest
import torch

from helpers import results, runtime


def test_resolve_concrete_profiles(no_profile_env):
    for name in runtime.PROFILES:
        assert runtime.resolve_profile(name) == name
    assert runtime.resolve_profile(" Laptop ") == "laptop"


def test_auto_is_laptop_without_cuda(no_profile_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_profile("auto") == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_profile("auto") == "gpu"


def test_env_overrides_auto_only(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert runtime.resolve_profile("auto") == "smoke"
    assert runtime.resolve_profile("gpu") == "gpu"


def test_unknown_profile_lists_valid_ones(no_profile_env):
    with pytest.raises(ValueError, match="valid profiles: auto, smoke, laptop, gpu"):
        runtime.resolve_profile("fast")
    with pytest.raises(TypeError):
        runtime.resolve_profile(3)


def test_unknown_env_profile_is_an_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="turbo"):
        runtime.setup("auto", verbose=False)


def test_setup_seeds_everything_and_prints_one_line(no_profile_env, capsys, tmp_path):
    run = runtime.setup("smoke", seed=7, figure_dir=tmp_path)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "profile=smoke" in out[0] and "torch=" in out[0] and "timm=" in out[0]
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    runtime.setup("smoke", seed=7, figure_dir=tmp_path, verbose=False)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    assert run.device.type in ("cpu", "cuda", "mps")
    assert runtime.current().seed == 7


def test_default_figure_dir_under_build(no_profile_env, monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_BUILD_DIR", str(tmp_path))
    run = runtime.setup("laptop", verbose=False)
    assert run.figure_dir == tmp_path / "laptop" / "figures"


def test_device_preference_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.detect_device().type == "cpu"
    assert runtime.detect_device("cpu").type == "cpu"


def test_generator_is_seeded():
    run = runtime.setup("smoke", seed=3, verbose=False)
    assert torch.equal(
        torch.rand(3, generator=run.generator(1)), torch.rand(3, generator=run.generator(1))
    )
    assert not torch.equal(
        torch.rand(3, generator=run.generator(1)), torch.rand(3, generator=run.generator(2))
    )


def test_pick_presets(no_profile_env):
    presets = {"smoke": 1, "laptop": 2, "gpu": 3}
    assert runtime.pick(presets, "laptop") == 2
    with pytest.raises(ValueError, match="no preset"):
        runtime.pick({"smoke": 1}, "gpu")


def test_seed_must_be_int():
    with pytest.raises(TypeError, match="seed must be an int"):
        runtime.seed_everything(1.5)


def test_timer_measures():
    with runtime.timer() as t:
        sum(range(1000))
    assert t["seconds"] >= 0


def test_thread_count_from_the_environment():
    before = torch.get_num_threads()
    try:
        choice = runtime.configure_threads({"COURSE_NUM_THREADS": "1"})
        assert choice.threads == 1 and choice.source == "COURSE_NUM_THREADS"
        assert torch.get_num_threads() == 1
        for bad in ("0", "two", "-1"):
            with pytest.raises(ValueError, match="COURSE_NUM_THREADS must be a positive integer"):
                runtime.configure_threads({"COURSE_NUM_THREADS": bad})
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("cores", "others", "jobs", "expected"),
    [
        (2, 0.0, 1, 2),  # idle: every core
        (2, 0.3, 1, 2),  # a browser's worth of load: still both
        (2, 1.0, 1, 1),  # one core busy (another PyTorch job): one thread, never two
        (2, 1.9, 1, 1),  # everything busy: at least one
        (2, 7.5, 1, 1),  # more runnable than cores
        (8, 2.6, 1, 5),  # five of eight free
        (8, 0.0, 2, 4),  # two jobs share the free cores
        (8, 0.0, 3, 2),  # never more threads in all than cores
        (2, 0.0, 4, 1),  # more jobs than cores: one each
    ],
)
def test_threads_are_the_free_cores(cores, others, jobs, expected):
    choice = runtime.choose_threads({}, jobs=jobs, others=others, cores=(cores, f"{cores} cores"))
    assert choice.threads == expected and choice.source == "auto"
    assert choice.describe().startswith(f"{expected} thread")
    assert f"{others:.1f} busy with other processes" in choice.describe()


def test_course_num_threads_overrides_the_choice_and_auto_chooses():
    env = {"COURSE_NUM_THREADS": "3"}
    assert runtime.choose_threads(env, others=1.9, cores=(2, "2 cores")).threads == 3
    auto = runtime.choose_threads({"COURSE_NUM_THREADS": "auto"}, others=1.0, cores=(2, "2"))
    assert auto.threads == 1 and auto.source == "auto"
    with pytest.raises(ValueError, match="jobs must be a positive int"):
        runtime.choose_threads({}, jobs=0, others=0.0, cores=(2, ""))


def test_choose_threads_measures_the_machine_when_not_told():
    choice = runtime.choose_threads({}, sample_seconds=0.05)
    assert 1 <= choice.threads <= choice.cores <= (os.cpu_count() or 1)
    assert choice.others is None or choice.others >= 0


def test_cgroup_quota_is_read_from_v2_and_v1_files(tmp_path):
    v2 = tmp_path / "cpu.max"
    quota, period = tmp_path / "cfs_quota_us", tmp_path / "cfs_period_us"
    period.write_text("100000\n")
    assert runtime.cgroup_cpu_quota([(tmp_path / "missing",)]) is None
    v2.write_text("150000 100000\n")
    assert runtime.cgroup_cpu_quota([(v2,), (quota, period)]) == 1.5
    v2.write_text("max 100000\n")
    assert runtime.cgroup_cpu_quota([(v2,), (quota, period)]) is None  # v2 says: no quota
    quota.write_text("-1\n")
    assert runtime.cgroup_cpu_quota([(tmp_path / "missing",), (quota, period)]) is None
    quota.write_text("200000\n")
    assert runtime.cgroup_cpu_quota([(tmp_path / "missing",), (quota, period)]) == 2.0


def test_a_container_quota_caps_the_cores(monkeypatch):
    monkeypatch.setattr(runtime, "cgroup_cpu_quota", lambda *a: 1.5)
    cores, why = runtime.cpu_cores()
    assert cores == 1 and "quota 1.5" in why
    monkeypatch.setattr(runtime, "cgroup_cpu_quota", lambda *a: None)
    assert runtime.cpu_cores()[0] >= 1


def test_other_processes_cpu_excludes_this_process():
    # 10 CPU-seconds busy over 2 s, 1 of them ours: others kept 1.5 cores busy
    a, b = runtime.CpuTimes(0.0, 100.0, 5.0), runtime.CpuTimes(2.0, 104.0, 6.0)
    assert runtime.others_between(a, b) == pytest.approx(1.5)
    assert runtime.others_between(a, runtime.CpuTimes(2.0, None, 6.0)) is None
    start = runtime.cpu_times()
    end_wall = start.wall + 0.2
    while time.perf_counter() < end_wall:  # our own busy loop
        pass
    end = runtime.cpu_times()
    assert end.own > start.own
    others = runtime.others_between(start, end)
    assert others is None or 0 <= others <= (os.cpu_count() or 1) + 0.5


def test_contention_is_demand_beyond_the_cores():
    assert runtime.contended(1.0, 2, 1) is False  # one thread on the free core
    assert runtime.contended(1.0, 2, 2) is True  # two threads, one core busy elsewhere
    assert runtime.contended(0.1, 2, 2) is False
    assert runtime.contended(None, 2, 2) is None


def test_setup_prints_and_records_threads_and_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        run = runtime.setup("smoke", notebook="99_threads")
        assert "threads=1 (COURSE_NUM_THREADS: " in capsys.readouterr().out
        run.record("x", 1.0, label="x")
        data = results.read(run.results_path)
        assert data["threads"] == 1 and data["cpu_cores"] >= 1
        assert data["threads_chosen"].startswith("1 thread (COURSE_NUM_THREADS")
        for key in ("load_average_start", "load_average", "cpu_others", "contended"):
            assert key in data, key
        if data["cpu_others"] is not None:
            assert data["contended"] == runtime.contended(data["cpu_others"], data["cpu_cores"], 1)
    finally:
        torch.set_num_threads(before)


def test_setup_names_the_helpers_in_use_when_they_are_not_the_checkouts(
    no_profile_env, capsys, tmp_path, monkeypatch
):
    other = tmp_path / "other-checkout"
    (other / "helpers").mkdir(parents=True)
    (other / "helpers" / "__init__.py").write_text("")
    (other / "pyproject.toml").write_text("[project]\nname = 'imgen-course'\n")
    (other / "notebooks").mkdir()
    monkeypatch.chdir(other / "notebooks")  # a notebook of another checkout
    runtime.setup("smoke", seed=0)
    out = capsys.readouterr().out
    ours = runtime.project_root() / "helpers"
    assert f"helpers={ours} (not this checkout's: {other.resolve()})" in out
    monkeypatch.chdir(runtime.project_root() / "notebooks")  # this checkout's own notebooks
    runtime.setup("smoke", seed=0)
    assert "not this checkout" not in capsys.readouterr().out
    assert runtime.foreign_helpers(tmp_path) is None  # outside any checkout: nothing to say


def test_run_ids_keep_two_runs_results_apart(no_profile_env, monkeypatch):
    monkeypatch.setenv("COURSE_RUN_ID", "run-a")
    a = runtime.setup("smoke", notebook="99_demo", verbose=False)
    assert a.run_id == "run-a"
    a.record("x", 1.0, label="a")
    monkeypatch.setenv("COURSE_RUN_ID", "run-b")  # a second run of the notebook, same folder
    b = runtime.setup("smoke", notebook="99_demo", verbose=False)
    a.record("y", 2.0, label="late number of run a")
    data = results.read(b.results_path)  # run a rewrote the file: all of its numbers, no mix
    assert data["run_id"] == "run-a" and [r.key for r in data["results"]] == ["x", "y"]
    b.record("z", 3.0, label="b")
    data = results.read(b.results_path)
    assert data["run_id"] == "run-b" and [r.key for r in data["results"]] == ["z"]
    monkeypatch.delenv("COURSE_RUN_ID")
    assert runtime.setup("smoke", verbose=False).run_id  # a fresh id outside a runner
