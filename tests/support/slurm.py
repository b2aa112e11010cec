"""A private, throw-away single-node SLURM for tests and benchmarks (Debian's slurm-wlm + munge).

Starts ``munged``, ``slurmctld`` and ``slurmd`` with their own key, socket, config, state, spool,
pid and log files in a fresh temp folder: no systemd, nothing under /etc or /var touched. The
node and the controller talk over 127.0.0.1 on free ports (slurmctld itself binds 0.0.0.0 whatever
the config says). Client commands (sbatch, squeue, ...) find it through ``SLURM_CONF``; use
:meth:`env` for subprocesses or :meth:`activate` to set it in this process.

Needs root (slurmd starts job steps as their user) and the binaries of ``make test``'s
``slurm-tools`` target (scripts/install-slurm.sh).

    with SlurmCluster() as slurm:
        slurm.run("sbatch", "--wrap", "hostname")
        slurm.wait_for_queue_empty()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_program(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_programs() -> list[str]:
    """Names of the SLURM/MUNGE programs this machine lacks (empty when all are there)."""
    needed = (*DAEMONS, "mungekey", *CLIENTS)
    return [name for name in needed if find_program(name) is None]


def _free_memory_mb() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 2048


class SlurmError(RuntimeError):
    pass


class SlurmCluster:
    """One controller + one node named after ``hostname -s``; ``partition`` is the default."""

    partition = "debug"

    def __init__(self, cpus: int | None = None, memory_mb: int | None = None):
        missing = missing_programs()
        if missing:
            raise SlurmError(
                f"SLURM programs not found: {', '.join(missing)} "
                "(run scripts/install-slurm.sh or `make slurm-tools`)"
            )
        if os.geteuid() != 0:
            raise SlurmError("a private SLURM needs root (slurmd starts jobs as their user)")
        self.node = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb or max(1024, min(8192, int(_free_memory_mb() * 0.5)))
        self.base = Path(tempfile.mkdtemp(prefix="simmate-slurm-"))
        self.conf = self.base / "slurm.conf"
        self.state_dir = self.base / "state"
        self.spool_dir = self.base / "spool"
        self.log_dir = self.base / "log"
        self.munge_dir = self.base / "munge"
        self.munge_socket = self.munge_dir / "munge.socket"
        self.ctld_port = free_port()
        self.slurmd_port = free_port()
        self._started: list[str] = []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        try:
            self._start_munge()
            self._write_conf()
            self._daemon("slurmctld", "-f", str(self.conf))
            self._started.append("slurmctld")
            self._daemon("slurmd", "-f", str(self.conf), "-N", self.node)
            self._started.append("slurmd")
            self._wait_for_idle_node(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first), wait until they are gone."""
        if "slurmctld" in self._started:
            self.run("scancel", "--full", "--user", str(os.geteuid()), check=False)
        for name in reversed(self._started):
            self._kill(name)
        self._started.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # --- clients -----------------------------------------------------------------------------

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment for subprocesses that use this SLURM."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def activate(self) -> None:
        os.environ["SLURM_CONF"] = str(self.conf)

    def run(self, program: str, *args: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess:
        result = subprocess.run([find_program(program) or program, *args], env=self.env(),
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise SlurmError(f"{program} {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def job_ids(self) -> list[str]:
        """Ids of every job slurmctld still knows as pending, running or completing."""
        out = self.run("squeue", "--noheader", "--format=%i", "--states=PD,R,CG,CF,S").stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def jobs(self) -> list[dict[str, str]]:
        out = self.run("squeue", "--noheader", "--format=%i|%j|%T|%P").stdout
        rows = []
        for line in out.splitlines():
            if line.strip():
                job_id, name, state, partition = line.strip().split("|")
                rows.append({"id": job_id, "name": name, "state": state, "partition": partition})
        return rows

    def wait_for_queue_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.job_ids():
            if time.monotonic() > deadline:
                raise SlurmError(f"jobs still queued after {timeout:g} s: {self.jobs()}")
            time.sleep(0.2)

    def cancel_all(self) -> None:
        self.run("scancel", "--user", str(os.geteuid()), check=False)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # --- internals ---------------------------------------------------------------------------

    def _start_munge(self) -> None:
        self.munge_dir.mkdir(mode=0o711)
        self.munge_dir.chmod(0o711)  # munged requires its socket folder to be 0711
        self.log_dir.mkdir()
        key = self.munge_dir / "munge.key"
        subprocess.run([find_program("mungekey"), "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)
        key.chmod(0o600)
        self._daemon(
            "munged", "--force",
            f"--socket={self.munge_socket}",
            f"--pid-file={self._pid_file('munged')}",
            f"--log-file={self.log_dir / 'munged.log'}",
            f"--key-file={key}",
            f"--seed-file={self.munge_dir / 'munge.seed'}",
        )
        self._started.append("munged")
        _wait_for(lambda: self.munge_socket.exists(), 10, "munged did not create its socket")

    def _write_conf(self) -> None:
        for directory in (self.state_dir, self.spool_dir):
            directory.mkdir(mode=0o700)
        self.conf.write_text(
            "\n".join([
                "# written by tests/support/slurm.py",
                "ClusterName=simmate-test",
                f"SlurmctldHost={self.node}(127.0.0.1)",
                f"SlurmctldPort={self.ctld_port}",
                f"SlurmdPort={self.slurmd_port}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "CredType=cred/munge",
                f"AuthInfo=socket={self.munge_socket}",
                f"StateSaveLocation={self.state_dir}",
                f"SlurmdSpoolDir={self.spool_dir}",
                f"SlurmctldPidFile={self._pid_file('slurmctld')}",
                f"SlurmdPidFile={self._pid_file('slurmd')}",
                f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
                f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core_Memory",
                "DefMemPerCPU=512",
                "MpiDefault=none",
                "ReturnToService=2",
                "MailProg=/bin/true",
                # quick turnover: a test's jobs leave squeue soon after they end
                "MinJobAge=10",
                "KillWait=5",
                "SchedulerParameters=sched_interval=1",
                f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                f"RealMemory={self.memory_mb} State=UNKNOWN",
                f"PartitionName={self.partition} Nodes={self.node} Default=YES "
                "MaxTime=INFINITE State=UP",
                "",
            ])
        )

    def _pid_file(self, name: str) -> Path:
        return self.base / f"{name}.pid"

    def _daemon(self, name: str, *args: str) -> None:
        """Start a daemon that backgrounds itself; raise with its log if it does not."""
        result = subprocess.run([find_program(name), *args], env=self.env(),
                                capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise SlurmError(f"{name} did not start: {result.stderr.strip()}\n{self.log_tail()}")
        _wait_for(lambda: self._pid(name) is not None, 10, f"{name} wrote no pid file")

    def _pid(self, name: str) -> int | None:
        try:
            return int(self._pid_file(name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _kill(self, name: str, timeout: float = 15) -> None:
        pid = self._pid(name)
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)

    def _wait_for_idle_node(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            result = self.run("sinfo", "--noheader", "--format=%T", "--nodes", self.node,
                              check=False)
            state = result.stdout.strip() or result.stderr.strip()
            if state.rstrip("*") == "idle":
                return
            time.sleep(0.2)
        raise SlurmError(f"node {self.node} not idle after {timeout:g} s ({state})\n"
                         f"{self.log_tail()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie we never reap would look alive: check its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SlurmError(message)
        time.sleep(0.05)
