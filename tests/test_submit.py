"""--gpus and --slurm of the table scripts and demo.sh (scripts/submit.py), without SLURM: runs on
fake GPU ids of this machine (their order, at most one run per id, failures, starting again),
the Makefile and the sbatch lines that --dry-run prints, and the bad inputs. tests/test_slurm.py
submits to a real SLURM."""
from __future__ import annotations

import collections
import os
import re
import shlex
import stat
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from test_scripts import PATH_FLAGS, dry_run

SLURM_OPTIONS = ("--partition", "--time", "--gres", "--dependency", "--qos", "--mail-type")


def bash(script: str, *args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHON": "python", **(env or {})})


def executable(path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def logging_python(folder, real: str | None = None) -> str:
    """An interpreter for the runs that appends `start TIME GPU KEY` and `end TIME STATUS KEY` lines
    to folder/events (KEY: the run's --dir, or the script of a run without one). It runs ``real``
    (a Python) or, without one, pretends: a sleep of $PRETEND_SECONDS (0.3), then summary.json, or
    exit status 1 for the run whose --dir is $FAIL_DIR."""
    work = f'{real} "$@"; status=$?' if real else \
        'sleep ${PRETEND_SECONDS:-0.3}; status=0; if [[ $key == "${FAIL_DIR-}" ]]; then status=1; ' \
        'echo "error: failed on purpose" >&2; ' \
        'elif [[ $key != *.py ]]; then mkdir -p "$key" && echo {} > "$key/summary.json"; fi'
    return executable(folder / "python", f"""#!/usr/bin/env bash
key=$1
for a; do [[ $a == --dir=* ]] && key=${{a#--dir=}}; done
echo "start $(date +%s.%N) ${{CUDA_VISIBLE_DEVICES-unset}} $key" >> {folder}/events
{work}
echo "end $(date +%s.%N) $status $key" >> {folder}/events
exit $status
""")


Run = collections.namedtuple("Run", "start end gpu status")


def read_events(folder) -> dict[str, list[Run]]:
    """{run: its starts, in order}."""
    started, runs = {}, collections.defaultdict(list)
    path = folder / "events"
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, time, value, key = line.split(" ", 3)
        if kind == "start":
            started[key] = (float(time), value)
        else:
            start, gpu = started.pop(key)
            runs[key].append(Run(start, float(time), gpu, int(value)))
    assert not started, f"runs that never ended: {started}"
    return runs


def waits(lines: list[str]) -> dict[str, set[str]]:
    """{run: the runs it must wait for}, from the commands' path flags (a run without --dir: all)."""
    result = {}
    for line in lines:
        words = shlex.split(line)
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--") and "=" in w)
        reads = {os.path.dirname(v) for w in words for name in PATH_FLAGS if w.startswith(f"--{name}=")
                 for v in [w.split("=", 1)[1]]}
        key = flags.get("dir", next(w for w in words if w.endswith(".py") and w != words[0]))
        result[key] = reads & set(result) if "dir" in flags else set(result)
    return result


def check_schedule(runs: dict[str, list[Run]], after: dict[str, set[str]], gpus: set[str] | None) -> int:
    """Every run waited for its dependencies, ran on one of ``gpus`` and never shared it (unless
    ``gpus`` is None: runs without a GPU); returns the most runs that ran at once."""
    for key, deps in after.items():
        for dep in deps:
            assert runs[dep][-1].end <= runs[key][-1].start, f"{key} started before {dep} had ended"
    flat = [(key, run) for key, starts in runs.items() for run in starts]
    most = 0
    for key, run in flat:
        at_once = [(k, r) for k, r in flat if r.start <= run.start < r.end]
        if gpus is not None:
            assert run.gpu in gpus, (key, run.gpu)
            assert len({r.gpu for _, r in at_once}) == len(at_once), f"two runs on one GPU: {at_once}"
        most = max(most, len(at_once))
    return most


def plain_commands(script: str, out) -> list[str]:
    return [c.line for c in dry_run(script, "/data", str(out))]


# --------------------------------------------------------------------------- --gpus on this machine

def test_gpus_runs_a_table_in_dependency_order_one_run_per_gpu(tmp_path):
    env = {"PYTHON": logging_python(tmp_path), "GPU_LOCK_DIR": str(tmp_path / "locks")}
    out = tmp_path / "out"
    result = bash("curves_table.sh", "/data", out, "--gpus", "0,1", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = plain_commands("curves_table.sh", out)
    runs = read_events(tmp_path)
    assert len(runs) == len(commands) == 42 and all(len(starts) == 1 for starts in runs.values())
    assert check_schedule(runs, waits(commands), {"0", "1"}) == 2  # two at once, never three
    for key, [run] in runs.items():
        log = (tmp_path / f"{key}.log").read_text()  # beside the run folder
        assert f"CUDA_VISIBLE_DEVICES={run.gpu}" in log and "exit status 0" in log
    assert result.stdout.count("started") == result.stdout.count("finished") == 42

    again = bash("curves_table.sh", "/data", out, "--gpus=0,1", env=env)  # finished runs are skipped
    assert again.returncode == 0 and again.stdout.count("# done, skipped") == 42, again.stdout
    assert len(read_events(tmp_path)) == 42 and sum(map(len, read_events(tmp_path).values())) == 42


def test_gpus_a_failed_run_stops_only_the_runs_that_need_it(tmp_path):
    out = tmp_path / "out"
    model = f"{out}/curves/CIFAR10/VGG16"
    env = {"PYTHON": logging_python(tmp_path), "GPU_LOCK_DIR": str(tmp_path / "locks"),
           "FAIL_DIR": f"{model}/endpoint-1"}
    result = bash("curves_table.sh", "/data", out, "--gpus", "3,7", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{model}/Bezier" in errors[0], result.stderr
    assert f"FAILED (exit status 1) {model}/endpoint-1" in result.stdout
    runs = read_events(tmp_path)
    blocked = {f"{model}/{name}" for name in ("eval-segment", "Bezier", "eval-Bezier", "PolyChain", "eval-PolyChain")}
    assert len(runs) == 42 - len(blocked) and not blocked & set(runs)  # the other 36 ran (one failed)
    assert all(os.path.exists(f"{key}/summary.json") for key in runs if key != f"{model}/endpoint-1")

    board = status_board(bash("curves_table.sh", "/data", out, "--status", env=env))
    name = "CIFAR10/VGG16"
    assert board[f"{name}/endpoint-1"][0] == "failed" and "error: failed on purpose" in board[f"{name}/endpoint-1"][1]
    for run in blocked:
        state, what = board[f"{name}/{run.rsplit('/', 1)[1]}"]
        assert state == "never started" and re.fullmatch(r"needs .* \((failed|never started)\)", what), (run, what)
    assert sum(board[key][0] == "done" for key in board if key != "#") == 36 and len(board) == 1 + 42
    assert "--gpus 3,7" in board["#"][-1] and "curves_table.sh /data" in board["#"][-1]  # what to type to go on

    del env["FAIL_DIR"]  # fixed: the same command again runs what is left
    again = bash("curves_table.sh", "/data", out, "--gpus", "3,7", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("# done, skipped") == 36 and again.stdout.count("finished") == 6
    assert status_board(bash("curves_table.sh", "/data", out, "--status", env=env))["#"][-1] == "# every run is done"


def test_demo_on_two_fake_gpus(tmp_path):
    """The demo's runs two at a time, each seeing CUDA_VISIBLE_DEVICES=0 or 1, in the order they need.
    The runs pretend (test_slurm runs the quick demo's real runs as a table; test_demo its report)."""
    env = {"PYTHON": logging_python(tmp_path), "GPU_LOCK_DIR": str(tmp_path / "locks")}
    out = tmp_path / "demo"
    result = bash("demo.sh", out, "--quick", "--gpus", "0,1", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = bash("demo.sh", out, "--quick", "--dry-run", env=env).stdout.splitlines()
    commands = [line for line in listed if line.startswith(env["PYTHON"])]
    runs = read_events(tmp_path)
    assert len(runs) == len(commands) == 17 and all(run.status == 0 for [run] in runs.values())
    assert check_schedule(runs, waits(commands), {"0", "1"}) == 2
    assert (out / "endpoint-1.log").exists() and (out / "demo_report.log").exists()
    again = bash("demo.sh", out, "--quick", "--gpus", "0,1", env=env)  # finished: its report too
    assert again.returncode == 0 and again.stdout.count("# done, skipped") == 17, again.stdout
    assert "# every run is finished" in again.stdout and read_events(tmp_path) == runs


def test_demo_two_jobs_at_a_time_on_this_machine(tmp_path):
    """make demo's --jobs 2: the runs two at a time, in the order they need, in --jobs slots that
    leave CUDA_VISIBLE_DEVICES alone, then the report's tables printed (demo_report.py --show, a
    second call of the report's script); started again, nothing runs but that."""
    env = {"PYTHON": logging_python(tmp_path), "GPU_LOCK_DIR": str(tmp_path / "locks")}
    out = tmp_path / "demo"
    result = bash("demo.sh", out, "--quick", "--jobs", "2", env={**env, "CUDA_VISIBLE_DEVICES": ""}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"2 at a time on this machine, {threads} thread" in result.stdout
    listed = bash("demo.sh", out, "--quick", "--dry-run", env=env).stdout.splitlines()
    commands = [line for line in listed if line.startswith(env["PYTHON"])]
    runs = read_events(tmp_path)
    report = runs.pop("scripts/demo_report.py")
    assert len(runs) == len(commands) - 1 == 16 and len(report) == 2  # the report, then --show
    assert all(run.gpu == "" and run.status == 0 for [run] in runs.values())  # as the caller set it
    assert check_schedule({**runs, "scripts/demo_report.py": report[:1]}, waits(commands), None) == 2
    assert report[1].start >= report[0].end and "a --jobs slot" in (out / "endpoint-1.log").read_text()
    assert result.stdout.count("started") == result.stdout.count("finished") == 17
    again = bash("demo.sh", out, "--quick", "--jobs=2", env=env)
    assert again.returncode == 0 and "# every run is finished" in again.stdout, again.stdout + again.stderr
    assert {k: v for k, v in read_events(tmp_path).items() if k != "scripts/demo_report.py"} == runs


def test_the_makefile_lists_the_runs_by_depth(tmp_path):
    """make -j starts the runs in the order `all` lists them: every run after those it waits for,
    and no run before one that waits for fewer levels (the demo's curve and plane before its
    second part's last runs)."""
    text = bash("demo.sh", tmp_path / "demo", "--quick", "--jobs", "2", "--dry-run").stdout
    order = re.search(r"^all: (.*)$", text, re.M).group(1).split()
    needs = {m.group(1): m.group(2).split() for m in re.finditer(r"^(run-\d+):(.*)$", text, re.M)}
    depth = {}
    for name in order:
        assert all(n in depth for n in needs[name]), name  # what it waits for comes before it
        depth[name] = 1 + max((depth[n] for n in needs[name]), default=-1)
    assert [depth[n] for n in order] == sorted(depth.values()) and max(depth.values()) == 3
    assert sorted(order, key=lambda n: int(n[4:])) == [f"run-{i}" for i in range(1, 18)]


def test_a_finished_demo_started_again_here_does_not_run_its_report_again(tmp_path):
    out = tmp_path / "demo"
    listed = bash("demo.sh", out, "--quick", "--dry-run").stdout.splitlines()
    for line in listed:
        words = [] if line.startswith("#") else shlex.split(line)
        for word in words:
            if word.startswith("--dir="):
                os.makedirs(word[6:])
                open(os.path.join(word[6:], "summary.json"), "w").write("{}")
    (out / "summary.json").write_text("{}")  # the report's
    env = {"PYTHON": logging_python(tmp_path)}
    result = bash("demo.sh", out, "--quick", env=env)
    assert result.returncode == 0 and result.stdout.count("# done, skipped") == 17, result.stdout
    assert not (tmp_path / "events").exists()


def status_board(result: subprocess.CompletedProcess) -> dict:
    """{run name: (state, what follows)} of --status's lines, and "#": its comment lines."""
    assert result.returncode == 0, result.stdout + result.stderr
    board = {"#": []}
    for line in result.stdout.splitlines():
        if line.startswith("#"):
            board["#"].append(line)
            continue
        match = re.fullmatch(r"(\S+(?: started)?)\s+(\S+)\s*(.*)", line)
        assert match, line
        board[match.group(2)] = (match.group(1), match.group(3))
    return board


def test_status_of_runs_on_gpus_while_they_run(tmp_path):
    """A run under way on a GPU (its with_gpu.sh alive), the run waiting for it, and then all done."""
    env = {**os.environ, "GPU_LOCK_DIR": str(tmp_path / "locks"), "PRETEND_SECONDS": "3"}
    python = logging_python(tmp_path)
    lines = [f"cd {tmp_path}", f"{python} train.py --dir={tmp_path}/a", f"{python} fge.py --dir={tmp_path}/b --ckpt={tmp_path}/a/x.pt"]
    submit = [sys.executable, os.path.join(ROOT, "scripts", "submit.py")]
    table = subprocess.Popen([*submit, "--gpus", "0", "--command=bash my_table.sh"], text=True, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    table.stdin.write("\n".join(lines) + "\n")
    table.stdin.close()
    deadline = time.monotonic() + 60
    while not (tmp_path / "a.log").exists() or "pid" not in (tmp_path / "a.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = [*submit, "--status", "--gpus=0"]
    board = status_board(subprocess.run(status, input="\n".join(lines), capture_output=True, text=True, env=env))
    assert board["a"][0] == "running" and board["a"][1].startswith("GPU 0, pid "), board
    assert board["b"] == ("not started", "waits for a"), board
    assert table.wait(timeout=60) == 0
    board = status_board(subprocess.run(status, input="\n".join(lines), capture_output=True, text=True, env=env))
    assert board["a"][0] == board["b"][0] == "done" and board["#"][-1] == "# every run is done", board


def test_sbatch_args_take_an_option_as_their_value():
    for value, words in (("--cpus-per-task=2", ["--cpus-per-task=2"]), ("--cpus-per-task 2", ["--cpus-per-task", "2"])):
        for flag in ("--sbatch_args", "--sbatch-args"):
            result = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "submit.py"), "--slurm",
                                     "--dry-run", flag, value], input="python train.py --dir=/tmp/x\n",
                                    capture_output=True, text=True)
            assert result.returncode == 0, result.stderr
            sbatch = sbatch_lines(result.stdout)[1]
            batch = sbatch.index(os.path.join(ROOT, "scripts", "slurm_job.sh"))
            assert sbatch[batch - len(words):batch] == words, sbatch
    nowhere = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "submit.py")], input="python x.py\n",
                             capture_output=True, text=True)
    assert_one_error_line(nowhere)


def test_the_job_script_divides_the_cpus_among_torchruns_workers(tmp_path):
    """slurm_job.sh outside SLURM (a command that ends well: no scontrol): OMP_NUM_THREADS is the
    job's CPUs over torchrun's workers (--nproc_per_node), all of them for another command."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("torchrun", "python"):
        executable(bin_dir / name, '#!/usr/bin/env bash\necho "threads=$OMP_NUM_THREADS"\n')
    job = os.path.join(ROOT, "scripts", "slurm_job.sh")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    for command, threads in (([str(bin_dir / "torchrun"), "--nproc_per_node=4", "train.py"], 2),
                             ([str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node", "3", "train.py"], 2),
                             ([str(bin_dir / "python"), "train.py"], 8)):
        result = subprocess.run(["bash", job, *command], capture_output=True, text=True,
                                env={**env, "SLURM_CPUS_PER_TASK": "8", "SLURM_JOB_ID": "1"})
        assert result.returncode == 0, result.stderr
        assert f"threads={threads}" in result.stdout and f"OMP_NUM_THREADS={threads}," in result.stdout, result.stdout
        assert result.stdout.splitlines()[-1].endswith("exit status 0: finished"), result.stdout


def test_gpus_dry_run_prints_the_makefile(tmp_path):
    out = tmp_path / "out"
    result = bash("fge_table.sh", "/data", out, "--gpus", "0,1,2,3", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert not out.exists()
    targets = dict(re.findall(r"^(run-\d+):(.*)$", result.stdout, re.M))
    assert len(targets) == 39
    commands = plain_commands("fge_table.sh", out)
    numbers = {shlex.split(c)[2][len("--dir="):]: f"run-{i}" for i, c in enumerate(commands, 1)}
    for i, (key, deps) in enumerate(waits(commands).items(), 1):
        assert set(targets[f"run-{i}"].split()) == {numbers[d] for d in deps}, key
    assert "with_gpu.sh" in result.stdout and " 0,1,2,3 " in result.stdout
    # make itself reads it: -n prints the recipes without running them
    make = subprocess.run(["make", "-n", "-f", "-", "-j4"], input=result.stdout, capture_output=True, text=True)
    assert make.returncode == 0 and make.stdout.count("with_gpu.sh") == 39, make.stderr


# --------------------------------------------------------------------------- --slurm --dry-run

def sbatch_lines(stdout: str) -> dict[int, list[str]]:
    """{n: the words of the sbatch command whose job id goes to $JOB_n}."""
    lines = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"JOB_(\d+)=\$\((sbatch .*)\)", line)
        if match:
            lines[int(match.group(1))] = shlex.split(match.group(2))
    return lines


def test_slurm_dry_run_prints_sbatch_lines_with_dependencies(tmp_path):
    out = tmp_path / "out"
    result = bash("curves_table.sh", "/data", out, "--slurm", "--dry-run", "--partition", "gpu", "--time=12:00:00",
                  "--gpus-per-job", "2", "--sbatch-args", "--qos=high --mail-type=END")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"cd {shlex.quote(ROOT)}" and not out.exists()
    jobs, commands = sbatch_lines(result.stdout), plain_commands("curves_table.sh", out)
    assert sorted(jobs) == list(range(1, 43))
    numbers = {}
    for n, (key, deps) in zip(sorted(jobs), waits(commands).items()):
        words = jobs[n]
        batch = words.index(os.path.join(ROOT, "scripts", "slurm_job.sh"))
        assert shlex.join(words[batch + 1:]) == commands[n - 1]  # the same command as without --slurm
        options = words[1:batch]
        for option in ("--parsable", "--requeue", "--signal=B:USR1@120", "--open-mode=append", f"--chdir={ROOT}",
                       f"--output={key}.log", "--partition=gpu", "--time=12:00:00", "--gres=gpu:2",
                       "--qos=high", "--mail-type=END", "--kill-on-invalid-dep=yes"):
            assert option in options, (option, options)
        dependency = [o for o in options if o.startswith("--dependency=")]
        expected = ":".join(f"${{JOB_{numbers[d]}}}" for d in sorted(deps, key=numbers.get))
        assert dependency == ([f"--dependency=afterok:{expected}"] if deps else []), (key, dependency)
        numbers[key] = n

    # the printed lines are a shell script: with a stand-in sbatch, the placeholders become job ids
    fake = executable(tmp_path / "sbatch", f'#!/usr/bin/env bash\necho "$*" >> {tmp_path}/submitted\n'
                      f'wc -l < {tmp_path}/submitted | tr -d " "\n')
    ran = subprocess.run(["bash", "-c", result.stdout], capture_output=True, text=True,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert ran.returncode == 0, ran.stderr
    submitted = (tmp_path / "submitted").read_text().splitlines()
    assert os.path.basename(fake) == "sbatch" and len(submitted) == 42
    assert "--dependency=afterok:1:2 " in submitted[2]  # eval-segment after both endpoints


def test_slurm_dry_run_leaves_out_finished_runs(tmp_path):
    out = tmp_path / "out"
    model = out / "curves" / "CIFAR100" / "VGG16"
    for name in ("endpoint-1", "endpoint-2", "Bezier"):
        (model / name).mkdir(parents=True)
        (model / name / "summary.json").write_text("{}")
    result = bash("curves_table.sh", "/data", out, "--slurm", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("# done, skipped") == 3
    jobs = {words[words.index(os.path.join(ROOT, "scripts", "slurm_job.sh")) + 3][len("--dir="):]: words
            for words in sbatch_lines(result.stdout).values()}
    assert len(jobs) == 39 and "--gres=gpu:1" in jobs[f"{model}/eval-segment"]
    for name in ("eval-segment", "eval-Bezier", "PolyChain"):  # nothing waits for a finished run
        assert not any(w.startswith("--dependency") for w in jobs[f"{model}/{name}"]), name
    assert any(w.startswith("--dependency=afterok:${JOB_") for w in jobs[f"{model}/eval-PolyChain"])


def test_demo_slurm_dry_run_the_report_waits_for_every_run(tmp_path):
    result = bash("demo.sh", tmp_path / "demo", "--quick", "--slurm", "--dry-run", "--gpus_per_job", "0")
    assert result.returncode == 0, result.stderr
    jobs = sbatch_lines(result.stdout)
    assert len(jobs) == 17 and not any(w.startswith("--gres") for words in jobs.values() for w in words)
    report = jobs[17]
    assert f"--output={tmp_path}/demo/demo_report.log" in report
    assert "--dependency=afterok:" + ":".join(f"${{JOB_{n}}}" for n in range(1, 17)) in report


# --------------------------------------------------------------------------- bad input

def assert_one_error_line(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


@pytest.mark.parametrize("args", [
    ("--gpus", ""), ("--gpus=",), ("--gpus", "zero,one"), ("--gpus", "0,,1"), ("--gpus",), ("--gpus", "0;1"),
    ("--gpus", "0,1", "--slurm"), ("--slurm", "--gpus=0"), ("--gpus", "0", "--partition", "gpu"),
    ("--slurm", "--time", "soon"), ("--slurm", "--time", "1", "--signal_seconds", "60"),
    ("--slurm", "--gpus_per_job", "-1"), ("--slurm", "--gpus_per_job", "two"), ("--slurm", "--sbatch_args", "'"),
    ("--slurm", "--partitoin", "gpu"), ("--status", "--dry-run"), ("--status", "--gpus", "0", "--partition", "gpu"),
    ("--jobs", "0"), ("--jobs", "two"), ("--jobs",), ("--jobs", "2", "--gpus", "0"), ("--jobs=2", "--slurm"),
    ("--jobs", "2", "--time", "10"),
])
def test_bad_input_is_one_error_line(args, tmp_path):
    for script, first in (("swa_table.sh", ["/data", tmp_path / "out"]), ("demo.sh", [tmp_path / "out", "--quick"])):
        assert_one_error_line(bash(script, *first, *args))
        assert not (tmp_path / "out").exists()


def test_slurm_without_sbatch_is_an_error(tmp_path):
    """--slurm where SLURM's commands are not installed: an error before anything runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        os.symlink(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip(), bin_dir / tool)
    os.symlink(sys.executable, bin_dir / "python3")
    out = tmp_path / "out"
    result = bash("swa_table.sh", "/data", out, "--slurm", env={"PATH": str(bin_dir)})
    assert_one_error_line(result)
    assert "sbatch" in result.stderr and not out.exists()
    dry = bash("swa_table.sh", "/data", out, "--slurm", "--dry-run", env={"PATH": str(bin_dir)})
    assert dry.returncode == 0 and len(sbatch_lines(dry.stdout)) == 24, dry.stderr  # printing needs no SLURM
