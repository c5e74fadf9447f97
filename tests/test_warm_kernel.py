"""The warm kernel: a launcher hands each kernel to a server that imported the stack once; the kernel runs code,
is interrupted, killed and shut down as Jupyter expects, and the first kernel of an environment runs without one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from jupyter_client.manager import KernelManager

from hils_kit.study import warm_kernel
from hils_kit.study.warm_kernel import _receive, _send, server_address, server_environment

pytestmark = pytest.mark.slow


def test_messages_carry_file_descriptors_and_long_payloads(tmp_path):
    """A request larger than one read, with the launcher's three streams, arrives whole."""
    ours, theirs = socket.socketpair()
    with ours, theirs, open(tmp_path / "out", "w") as stream:
        big = {"env": {f"V{i}": "x" * 100 for i in range(2000)}}
        sender = os.fork()
        if not sender:
            _send(ours, big, [0, stream.fileno(), 2])
            os._exit(0)
        message, fds = _receive(theirs, with_fds=True)
        os.waitpid(sender, 0)
        assert message == big and len(fds) == 3
        os.write(fds[1], b"through the passed descriptor")
        for fd in fds:
            os.close(fd)
    assert (tmp_path / "out").read_text() == "through the passed descriptor"


def test_the_server_is_keyed_on_the_environment_but_not_on_per_kernel_variables():
    env = {"HF_HOME": "/h", "PATH": "/bin"}
    same = {**env, "JPY_PARENT_PID": "1", "PYTEST_CURRENT_TEST": "t", "OMP_NUM_THREADS": "1", "HILS_PRECISION": "x"}
    same |= {"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_ID": "7"}
    assert server_environment(same) == env
    assert server_address(env) == server_address(same)
    assert server_address(env) != server_address({**env, "HF_HUB_OFFLINE": "1"})


def test_a_server_unfit_to_fork_says_why():
    """A Python thread would not survive the fork (the real server's probe for CUDA runs in the test below)."""
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert "Python threads" in warm_kernel._why_unfit()
    finally:
        release.set()
        thread.join()


@pytest.fixture
def warm(tmp_path, monkeypatch):
    """A kernelspec ``warm`` in a folder of its own, with servers in a temporary folder whose path is longer than
    a Unix socket's may be; stops them after."""
    tmp_path = tmp_path / ("long" * 20)
    tmp_path.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    monkeypatch.delenv(warm_kernel.SWITCH, raising=False)
    warm_kernel.install_kernelspec("warm", "warm", prefix=str(tmp_path))
    yield tmp_path
    warm_kernel.stop_servers()


def run(client, code: str, timeout: float = 120) -> dict:
    """Execute ``code`` and return ``{"stdout": ..., "error": ename or None}``."""
    msg_id = client.execute(code)
    out, error = "", None
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "stream":
            out += content["text"]
        elif kind == "error":
            error = content["ename"]
        elif kind == "status" and content["execution_state"] == "idle":
            return {"stdout": out, "error": error}


def start(env: dict | None = None) -> tuple[KernelManager, object]:
    manager = KernelManager(kernel_name="warm")
    manager.start_kernel(env={**os.environ, **(env or {})})
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    return manager, client


ORPHANING = """
import os, time
from jupyter_client.manager import KernelManager
manager = KernelManager(kernel_name="warm")
manager.start_kernel()
client = manager.client()
client.start_channels()
client.wait_for_ready(timeout=120)
client.execute("import os; print(os.getpid())")
while True:
    message = client.get_iopub_msg(timeout=120)
    if message["msg_type"] == "stream":
        print("pids", manager.provisioner.pid, message["content"]["text"].strip(), flush=True)
        time.sleep(300)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(predicate, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_kernels_fork_from_a_warm_server_and_behave_like_kernels(warm):
    probe = "import os, sys; print(os.getpid(), os.getppid(), 'torch' in sys.modules)"
    # the first kernel has no server: it runs ipykernel itself (torch not imported) and starts one
    manager, client = start()
    launcher_pid = manager.provisioner.pid
    pid, _, preloaded = run(client, probe)["stdout"].split()
    assert int(pid) == launcher_pid and preloaded == "False"
    manager.shutdown_kernel()
    folder = warm / f"hils-kernel-{os.getuid()}"
    wait_for(lambda: len(list(folder.glob("*.sock"))) == 1)
    address = next(folder.glob("*.sock"))

    # the next kernels are forked by the server: torch is already there, the launcher is not the kernel
    manager, client = start({"OMP_NUM_THREADS": "1"})
    pid, parent, preloaded = run(client, probe)["stdout"].split()
    assert int(pid) != manager.provisioner.pid and preloaded == "True"
    assert run(client, "import torch; print(torch.get_num_threads())")["stdout"].strip() == "1"
    # the preload is frozen out of the cycle collector (a full collection walked it in about 0.3 s), which stays on
    frozen, enabled = run(client, "import gc; print(gc.get_freeze_count(), gc.isenabled())")["stdout"].split()
    assert int(frozen) > 100_000 and enabled == "True"
    assert run(client, "import os; print(os.getcwd())")["stdout"].strip() == os.getcwd()
    handle = "from ipykernel.kernelapp import IPKernelApp; print(IPKernelApp.instance().parent_handle)"
    assert run(client, handle)["stdout"].strip() == str(os.getpid())  # JPY_PARENT_PID, as in a kernel of its own
    # an interrupt reaches the running cell
    sleeping = client.execute("import time; time.sleep(60)")
    time.sleep(1)
    started = time.monotonic()
    manager.interrupt_kernel()
    reply = client.get_shell_msg(timeout=30)
    while reply["parent_header"]["msg_id"] != sleeping:  # the replies to the cells before
        reply = client.get_shell_msg(timeout=30)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert time.monotonic() - started < 30
    assert run(client, "print('after')")["stdout"].strip() == "after"
    # a kill ends the forked kernel too
    manager.shutdown_kernel(now=True)
    wait_for(lambda: not alive(int(pid)))

    # a kernel that exits on its own: the launcher reports its exit code
    manager, client = start()
    launcher = manager.provisioner.process
    client.execute("import os; os._exit(3)")
    wait_for(lambda: launcher.poll() is not None)
    assert launcher.returncode == 3
    manager.cleanup_resources()

    # a Jupyter process that dies without shutting its kernel down takes the kernel with it, as with ipykernel
    orphaning = subprocess.Popen([sys.executable, "-c", ORPHANING], stdout=subprocess.PIPE, text=True)
    try:
        line = next(line for line in orphaning.stdout if line.startswith("pids"))  # the kernel writes here too
        launcher, kernel = map(int, line.split()[1:])
    finally:
        orphaning.kill()
    orphaning.wait()
    wait_for(lambda: not alive(launcher) and not alive(kernel), seconds=30)

    # asked to stop, the server removes its socket (the next kernel would run ipykernel itself, as the first did)
    assert warm_kernel.stop_servers() == 1
    wait_for(lambda: not address.exists())


def test_switched_off_the_launcher_runs_ipykernel_itself(warm, monkeypatch):
    monkeypatch.setenv(warm_kernel.SWITCH, "0")
    manager, client = start()
    assert int(run(client, "import os; print(os.getpid())")["stdout"]) == manager.provisioner.pid
    manager.shutdown_kernel()
    assert not list((warm / f"hils-kernel-{os.getuid()}").glob("*.sock"))
    assert sys.platform != "linux" or warm_kernel.enabled() is False
