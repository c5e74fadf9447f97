"""A Jupyter kernel that starts warm: a server process imports the training stack once and forks one kernel per
notebook.

Every notebook run starts a kernel, and a kernel of notebook 03 spends most of its first ten seconds importing
torch, transformers, peft and trl. The ``hils-kit`` kernelspec (``make setup``: :func:`install_kernelspec`) runs
``python -m hils_kit.study.warm_kernel -f CONNECTION_FILE``, a launcher that imports nothing heavy:

1. it connects to the *warm server* of its environment (a Unix socket in a private folder, one server per Python,
   installed packages and environment: :func:`server_address`) and hands over its working directory, environment,
   arguments and standard streams;
2. the server forks; the child sets those up and runs ipykernel, as ``python -m ipykernel_launcher`` would;
3. the launcher stays the kernel's process for Jupyter: it forwards signals (interrupt, terminate) to the child and
   exits as the child did (the server reports it); when the launcher dies (a kill), the child exits within
   milliseconds.

When no server answers, the launcher starts one in the background for the next kernels and this time runs
ipykernel itself, so a kernel never waits for a server. A server exits after :data:`IDLE_SECONDS` without kernels,
or when asked (:func:`stop_servers`). ``HILS_WARM_KERNEL=0`` turns it off. Under coverage (``make coverage``) the
server and its kernels are measured too: coverage restarts in a forked child (``patch = ["fork", "_exit", "execv"]``).

>>> sorted(set(server_environment({"HF_HOME": "/h", "JPY_PARENT_PID": "7", "OMP_NUM_THREADS": "1"})))
['HF_HOME']
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SWITCH = "HILS_WARM_KERNEL"  # "0" turns the warm server off
IDLE_SECONDS = 300.0  # a server with no kernel for this long exits
# what the server imports before it serves: the notebooks' heavy imports ("module:attribute" for lazy attributes)
PRELOAD = (
    "ipykernel.kernelapp",
    "numpy",
    "pandas",
    "scipy.stats",
    "matplotlib.pyplot",
    "seaborn",
    "torch",
    "transformers:AutoModelForCausalLM",
    "transformers:AutoTokenizer",
    "transformers:Trainer",
    "peft:get_peft_model",
    "trl:SFTTrainer",
    "trl:SFTConfig",
)
PYTHON_FLAGS = ("-Xfrozen_modules=off",)  # ipykernel's kernelspec runs Python so (for the debugger)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel sets when MPLBACKEND is unset
# variables read when code runs, not when the preloaded libraries are imported, which differ from kernel to kernel:
# a kernel gets its own values after the fork (threads through torch.set_num_threads; CUDA starts in the kernel)
PER_KERNEL = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONBREAKPOINT", "PWD", "OLDPWD")
PER_KERNEL += ("SHLVL", "_", "COLUMNS", "LINES", "SPT_NOENV")  # SPT_NOENV: a Ray worker's process titles
# the kit's own settings (it is never preloaded), Jupyter's, pytest's, the debugger's and the job schedulers'
PER_KERNEL_PREFIXES = ("HILS_", "JPY_", "PYTEST_", "PYDEVD_", "RAY_", "SUBMITIT_", "SLURM_")
_HEADER = struct.Struct("!I")


def server_environment(env: dict) -> dict:
    """The part of ``env`` a server is keyed on: all of it but :data:`PER_KERNEL`."""
    return {k: v for k, v in env.items() if k not in PER_KERNEL and not k.startswith(PER_KERNEL_PREFIXES)}


def servers_folder() -> Path:
    """Where the servers' sockets are: a folder in the temporary folder that only this user can enter."""
    folder = Path(tempfile.gettempdir()) / f"hils-kernel-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def server_address(env: dict | None = None) -> Path:
    """The socket of the server for this Python, its installed packages (the folder's modification time) and
    ``env`` (default: this process's)."""
    env = server_environment(dict(os.environ) if env is None else env)
    purelib = sysconfig.get_paths()["purelib"]
    key = json.dumps([sys.executable, purelib, os.stat(purelib).st_mtime_ns, PRELOAD, sorted(env.items())])
    return servers_folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.sock"


@contextlib.contextmanager
def _socket_at(address: Path):
    """A Unix socket for ``address``, used from its folder: a socket's path may not exceed about 100 bytes, and a
    temporary folder can be longer than that (the name is passed relative to the folder)."""
    saved = os.getcwd()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.chdir(address.parent)
        yield sock
    except BaseException:
        sock.close()
        raise
    finally:
        os.chdir(saved)


def _connect(address: Path) -> socket.socket:
    with _socket_at(address) as sock:
        sock.connect(address.name)
    return sock


def enabled() -> bool:
    """Whether kernels start from a warm server here: on Linux, unless turned off."""
    return sys.platform == "linux" and os.environ.get(SWITCH, "1") != "0"


# ----------------------------------------------------------------------------- messages


def _send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [payload], fds)
        payload = payload[sent:]
    sock.sendall(payload)


def _receive(sock: socket.socket, with_fds: bool = False) -> tuple[dict | None, list[int]]:
    """One message (``None`` at end of stream) and the file descriptors that came with it."""
    buffer, fds = b"", []
    while len(buffer) < _HEADER.size or len(buffer) < _HEADER.size + _HEADER.unpack_from(buffer)[0]:
        if with_fds and not fds:
            chunk, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        else:
            chunk = sock.recv(1 << 16)
        if not chunk:
            return None, fds
        buffer += chunk
    return json.loads(buffer[_HEADER.size :]), fds


# ----------------------------------------------------------------------------- the launcher (the kernel's process)


def launch(argv: list[str]) -> int:
    """Run a kernel with ipykernel's ``argv`` from the warm server and return its exit code; without a server,
    start one for the next kernels and run ipykernel in this process (never returns then)."""
    if enabled():
        address = server_address()
        try:
            sock = _connect(address)
        except OSError:  # no server: start one for the next kernels
            start_server(address)
        else:
            with contextlib.suppress(OSError):
                request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path0": sys.path[0]}
                _send(sock, request, [0, 1, 2])
                reply, _ = _receive(sock)
                if reply is not None and "pid" in reply:  # the kernel runs: its outcome is this process's
                    return _wait_for(reply["pid"], sock)
            sock.close()  # a server that cannot fork kernels here (it says why in its reply)
    os.execv(sys.executable, [sys.executable, *PYTHON_FLAGS, "-m", "ipykernel_launcher", *argv])


def _wait_for(child: int, sock: socket.socket) -> int:
    """Forward signals to the kernel ``child`` until the server reports how it ended; return its exit code, or die
    by the signal that killed it (1 if the server went away)."""

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)
    # as ipykernel does: end with the Jupyter process that started the kernel (the kernel ends with this one)
    parent = os.getppid()
    watch_parent = os.environ.get("JPY_PARENT_PID") == str(parent)
    while not select.select([sock], [], [], 1.0)[0]:
        if watch_parent and os.getppid() != parent:
            os._exit(1)
    try:
        outcome, _ = _receive(sock)  # {"exit": code}, negative for a signal, as Popen.returncode
    except OSError:
        outcome = None
    code = 1 if outcome is None else int(outcome["exit"])
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def start_server(address: Path) -> None:
    """Start the server of ``address`` in the background unless one is starting, serving or draining (it holds
    the address's lock for as long as it accepts kernels)."""
    lock = os.open(f"{address}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        return
    subprocess.Popen(
        [sys.executable, *PYTHON_FLAGS, "-m", "hils_kit.study.warm_kernel", "--serve", str(address), str(lock)],
        env=server_environment(dict(os.environ)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
        pass_fds=(lock,),
    )
    os.close(lock)  # the server holds the lock now


def stop_servers() -> int:
    """Ask every warm server of this user to exit once its kernels have ended; returns how many were asked."""
    asked = 0
    for address in sorted(servers_folder().glob("*.sock")):
        with contextlib.suppress(OSError), _connect(address) as sock:
            _send(sock, {"stop": True})
            asked += 1
    return asked


# ----------------------------------------------------------------------------- the server


def preload() -> int | None:
    """Import :data:`PRELOAD`, with matplotlib's backend set as ipykernel would set it; returns torch's default
    number of threads (``None`` without torch)."""
    import importlib

    os.environ.setdefault("MPLBACKEND", INLINE_BACKEND)
    for name in PRELOAD:
        module, _, attribute = name.partition(":")
        with contextlib.suppress(ImportError):
            loaded = importlib.import_module(module)
            if attribute:
                getattr(loaded, attribute)
    # what the preload made lives as long as the kernels: frozen, Python's cycle collector no longer walks it.
    # The training stack's objects number in the millions, so each full collection in a kernel (automatic, or
    # the two a Trainer run asks for) took about 0.3 s; frozen, they take milliseconds, and the forked kernels
    # share those pages instead of copying them when the collector would touch them (see gc.freeze).
    gc.collect()
    gc.freeze()
    return sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None


def serve(address: Path, lock: int) -> None:
    """Preload, then fork a kernel for each launcher that connects to ``address``; exit after
    :data:`IDLE_SECONDS` without kernels or when asked, once the kernels it forked have ended."""
    if sys.path and Path(sys.path[0]).resolve() == Path.cwd():  # as ipykernel_launcher does
        del sys.path[0]
    threads = preload()
    unfit = _why_unfit()
    with contextlib.suppress(FileNotFoundError):
        address.unlink()  # a dead server's
    with _socket_at(address) as listener:
        listener.bind(address.name)
    listener.listen(16)
    children: dict[int, socket.socket] = {}  # kernel pid: its launcher's connection
    idle_since = time.monotonic()
    while listener is not None or children:
        ready = select.select([listener] if listener is not None else [], [], [], 0.5)[0]
        _report_ended(children)
        if ready:
            conn, _ = listener.accept()
            try:
                request, fds = _receive(conn, with_fds=True)
            except OSError:  # a launcher that went away mid-request
                request, fds = None, []
            if request is not None and "argv" in request:
                if not unfit:
                    children[_fork_kernel(conn, request, fds, [listener, *children.values()], threads)] = conn
                    continue
                with contextlib.suppress(OSError):  # the launcher runs ipykernel itself, and starts no server
                    _send(conn, {"unfit": unfit})
            for fd in fds:
                os.close(fd)
            conn.close()
            if request is not None and request.get("stop"):
                listener = _close(listener, address, lock)
        if children:
            idle_since = time.monotonic()
        elif listener is not None and time.monotonic() - idle_since > IDLE_SECONDS:
            listener = _close(listener, address, lock)


def _why_unfit() -> str:
    """Why this server may not fork kernels after its preload, or ``""``: a Python thread would not survive the
    fork (the native pools of OpenBLAS and jemalloc handle forks), and CUDA, once touched, fails in a forked child.
    A forked probe asks torch."""
    import threading

    if threading.active_count() > 1:
        return f"{threading.active_count()} Python threads after the preload"
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    probe = os.fork()
    if not probe:
        os._exit(1 if torch.cuda._is_in_bad_fork() else 0)
    _, status = os.waitpid(probe, 0)
    return "the preload touched CUDA" if os.waitstatus_to_exitcode(status) else ""


def _report_ended(children: dict[int, socket.socket]) -> None:
    """Tell the launchers of the kernels that ended how they ended, and forget them."""
    for pid, conn in list(children.items()):
        with contextlib.suppress(ChildProcessError):
            ended, status = os.waitpid(pid, os.WNOHANG)
            if not ended:
                continue
            with contextlib.suppress(OSError):
                _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
        conn.close()
        del children[pid]


def _close(listener: socket.socket, address: Path, lock: int) -> None:
    """Stop accepting kernels: remove the socket and free the lock, so that a new server may start."""
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        address.unlink()
    os.close(lock)


def _fork_kernel(conn: socket.socket, request: dict, fds: list[int], servers: list, threads: int | None) -> int:
    """Fork the kernel of ``request``; in the server, return its pid. The child closes the server's sockets
    (``servers``: the listener, the other kernels' connections)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    code = 1
    try:
        for sock in servers:
            sock.close()
        code = _kernel(conn, request, fds, threads)
    finally:
        with contextlib.suppress(Exception):
            import atexit

            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _kernel(conn: socket.socket, request: dict, fds: list[int], threads: int | None) -> int:
    """In the forked child: become the launcher's kernel and run ipykernel; returns its exit code."""
    import threading

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # ipykernel reads JPY_PARENT_PID when imported, in the server, which has none: give it as an option
    parent = [f"--IPKernelApp.parent_handle={os.environ['JPY_PARENT_PID']}"] if "JPY_PARENT_PID" in os.environ else []
    sys.argv = ["ipykernel_launcher", *parent, *request["argv"]]
    sys.path.insert(0, request["path0"])
    _reseed_and_thread(threads)
    _send(conn, {"pid": os.getpid()})

    def watch_launcher():  # the launcher's end of the socket closes when it dies: so does the kernel
        with contextlib.suppress(OSError):
            while conn.recv(1):
                pass
        os._exit(1)

    threading.Thread(target=watch_launcher, daemon=True).start()
    from ipykernel import kernelapp

    try:
        kernelapp.launch_new_instance()
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    return 0


def _reseed_and_thread(default_threads: int | None) -> None:
    """What a new process would have of its own: numpy's global seed from entropy, and torch's thread count from
    ``OMP_NUM_THREADS`` (OpenMP read it once, in the server, which has none), else ``default_threads``."""
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if default_threads is not None:
        threads = os.environ.get("OMP_NUM_THREADS", "")
        sys.modules["torch"].set_num_threads(
            int(threads) if threads.isdigit() and int(threads) > 0 else default_threads
        )


# ----------------------------------------------------------------------------- the kernelspec


def install_kernelspec(name: str = "hils-kit", display_name: str = "HILS Kit (.venv)", prefix: str = sys.prefix):
    """Install the kernelspec ``name`` in ``prefix`` (``jupyter kernelspec list`` shows it): ipykernel's, with this
    Python started through the warm launcher."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager

    argv = [sys.executable, "-m", "hils_kit.study.warm_kernel", "-f", "{connection_file}"]
    with tempfile.TemporaryDirectory() as folder:
        spec = write_kernel_spec(Path(folder) / name, {"argv": argv, "display_name": display_name})
        return KernelSpecManager().install_kernel_spec(spec, name, prefix=prefix)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["--install"]:
        print(install_kernelspec(*sys.argv[2:]))
    else:
        sys.exit(launch(sys.argv[1:]))
