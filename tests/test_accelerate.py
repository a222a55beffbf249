"""The diffusion training loop under Hugging Face accelerate: two CPU processes with the same
global batch follow one process's loss curve (and end with its weights), write one checkpoint,
and resume from it."""

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers import checkpoint, diffusion_training, runtime

sys.path.insert(0, str(runtime.project_root() / "tests"))
import accelerate_train as script  # noqa: E402

pytest.importorskip("accelerate")
ROOT = runtime.project_root()


def _launch(*args, processes: int = 2) -> subprocess.CompletedProcess:
    """``accelerate launch`` of the script in ``processes`` CPU processes. ``--cpu`` with several
    processes needs mpirun in accelerate 1.x (without it one process runs); ``--multi_gpu``
    starts them with torchrun instead, and the script's ``Accelerator(cpu=True)`` joins them
    over gloo on the CPU."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
           str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
           "no", str(ROOT / "tests" / "accelerate_train.py"), *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_follow_one_and_resume(tmp_path):
    images, labels = script.data()
    one = diffusion_training.train(
        script.net(), images, labels=labels, device="cpu", **script.settings(6)
    )
    # interrupted in both processes during step 5 (last checkpoint at step 3), then resumed
    ckpt = tmp_path / "run.safetensors"
    crashed = _launch(tmp_path / "crashed.safetensors", ckpt, 6, 4)
    assert crashed.returncode != 0
    assert checkpoint.read(ckpt)[1]["step"] == 3
    resumed = _launch(tmp_path / "two.safetensors", ckpt, 6)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    two = load_file(tmp_path / "two.safetensors")
    assert int(two["processes"]) == 2 and int(two["resumed_from"]) == 3
    assert two["loss_history"].tolist() == pytest.approx(one.loss_history, rel=1e-4)
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(two[f"model.{name}"], value, rtol=1e-4, atol=1e-5)
    assert checkpoint.read(ckpt)[1]["step"] == 6  # the finished run's checkpoint


def test_a_batch_that_does_not_split_is_refused():
    class Two:  # the part of an Accelerator the loop reads before training
        num_processes, process_index, is_main_process = 2, 0, True
        device = torch.device("cpu")

    images, labels = script.data()
    settings = script.settings(1) | {"batch_size": 7}
    with pytest.raises(ValueError, match="batch_size=7 is not divisible by the accelerator's 2"):
        diffusion_training.train(script.net(), images, labels=labels, accelerator=Two(), **settings)
