"""A one-node SLURM cluster for the tests: SLURM's own daemons (munged, slurmctld, slurmd) started
as root in a temporary folder, with their own ports, socket, state and spool, and stopped by
their pid files afterwards. Debian's packages are all it needs (.ci/run installs them):

    apt-get install --no-install-recommends slurmctld slurmd slurm-client munge

    cluster = SlurmCluster(folder); cluster.start()
    subprocess.run(["sbatch", ...], env=cluster.env)   # every client command needs SLURM_CONF
    cluster.stop()

From nothing to a finished job takes about 15 s. No accounting daemon (slurmdbd), so no sacct:
`scontrol show job` and `squeue` tell a job's state while the controller remembers it
(MinJobAge, 10 minutes here).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time

SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"  # the daemons live in sbin, not always on a user's PATH
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo")
PACKAGES = "slurmctld slurmd slurm-client munge"

# cred_expire: a requeued batch job waits until its old credential expires (120 s by default);
# bf_interval/sched_interval/batch_sched_delay: jobs start within a second or two of submission;
# CPUs=8 with config_overrides: the node offers 8 one-CPU job slots whatever the machine has, so
# a 2-core machine runs several jobs at once (the tests' jobs are small).
SLURM_CONF = """\
ClusterName=tests
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={folder}/munge.socket,cred_expire=5
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2,batch_sched_delay=0
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName={host} NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def why_not() -> str | None:
    """Why SLURM cannot be started here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    path = f"{os.environ.get('PATH', '')}:{SBIN}"
    missing = [p for p in PROGRAMS if shutil.which(p, path=path) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; apt-get install {PACKAGES})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SlurmCluster:
    """munged, slurmctld and slurmd for one node, everything under ``folder``."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self.host = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.folder, "slurm.conf")
        self.env = {**os.environ, "SLURM_CONF": self.conf, "PATH": f"{os.environ.get('PATH', '')}:{SBIN}"}
        self.pid_files = []

    def start(self, timeout: float = 60) -> None:
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(self.folder, sub), exist_ok=True)
        os.chmod(self.folder, 0o755)  # munged refuses a socket folder others may write to
        key = os.path.join(self.folder, "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        with open(self.conf, "w") as f:
            f.write(SLURM_CONF.format(host=self.host, folder=self.folder, ctld_port=_free_port(), d_port=_free_port()))
        self._daemon("munged", f"--socket={self.folder}/munge.socket", f"--key-file={key}",
                     f"--pid-file={self.folder}/munged.pid", f"--log-file={self.folder}/munged.log",
                     f"--seed-file={self.folder}/munged.seed", "--force")
        self._daemon("slurmctld", "-i")  # -i: ignore state left by an earlier cluster (there is none)
        self._daemon("slurmd", "-N", self.host)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("sinfo", "--noheader", "--format=%t", check=False).stdout.strip()
            if state in ("idle", "mix", "alloc"):
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the SLURM node did not come up (sinfo says {state!r}); logs in {self.folder}")

    def _daemon(self, name: str, *args: str) -> None:
        """Start a daemon (it forks into the background) and remember its pid file."""
        program = shutil.which(name, path=self.env["PATH"])
        result = subprocess.run([program, *args], env=self.env, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"{name} failed to start: {result.stderr.strip()} (logs in {self.folder})")
        self.pid_files.append(os.path.join(self.folder, f"{name}.pid"))

    def stop(self) -> None:
        """Cancel the jobs left, then stop the daemons by the pids in their pid files (all at once:
        each takes a second or two to go) and wait until they are gone."""
        if len(self.pid_files) == 3:
            jobs = self.run("squeue", "--noheader", "--format=%i", check=False).stdout.split()
            if jobs:
                self.run("scancel", *jobs, check=False)
                time.sleep(2)
        pids = []
        for pid_file in self.pid_files:
            try:
                with open(pid_file) as f:
                    pids.append(int(f.read().split()[0]))
                os.kill(pids[-1], signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                continue
        deadline = time.monotonic() + 10
        for pid in pids:
            while True:
                try:
                    os.kill(pid, signal.SIGKILL if time.monotonic() > deadline else 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.pid_files = []

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A client command (sbatch, squeue, scontrol, ...) against this cluster."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=30, check=check)

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, ExitCode, Restarts, Dependency, ...)."""
        text = self.run("scontrol", "show", "job", "--oneliner", str(job_id)).stdout
        return dict(word.split("=", 1) for word in text.split() if "=" in word)

    def wait(self, job_ids, timeout: float) -> dict[str, dict[str, str]]:
        """Wait until the jobs have ended (completed, failed, cancelled...); their final fields."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = {j: self.job(j) for j in job_ids}
            if all(job["JobState"] not in ACTIVE for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError({j: (job["JobState"], job.get("Reason")) for j, job in jobs.items()})
            time.sleep(0.5)


ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD",
          "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED"}
