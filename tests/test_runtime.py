import random

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
        assert runtime.configure_threads({"COURSE_NUM_THREADS": "1"}) == 1
        assert torch.get_num_threads() == 1
        assert runtime.configure_threads({}) == 1  # unset: left as it is
        for bad in ("0", "two", "-1"):
            with pytest.raises(ValueError, match="COURSE_NUM_THREADS must be a positive integer"):
                runtime.configure_threads({"COURSE_NUM_THREADS": bad})
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
