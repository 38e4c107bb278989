"""A stand-in for a training run that keeps the run contract, for the requeue tests:

    python tests/requeue_standin.py --dir=DIR --steps=N [--step_seconds=S] [--ckpt=OTHER_RUN/state.json]

It counts N steps into DIR/state.json. On SIGUSR1 or SIGTERM it finishes its step, saves the
state and exits 75 (EX_TEMPFAIL: "requeue me"); started again, it continues from the saved
step; a finished run (DIR/summary.json) started again does nothing and exits 0. --ckpt names a
file in another run's folder, as the real scripts' flags do, so that scripts/submit.py makes
this run wait for that one; a run started before the one it waits for had finished exits 1.
DIR/starts.log gets one line per start: the start's number and the step it starts from.
"""
import argparse
import json
import os
import signal
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--step_seconds", type=float, default=0.1)
    parser.add_argument("--ckpt")
    args = parser.parse_args()
    if args.ckpt and not os.path.exists(os.path.join(os.path.dirname(args.ckpt), "summary.json")):
        print(f"error: started before the run of {args.ckpt} had finished", file=sys.stderr)
        return 1
    os.makedirs(args.dir, exist_ok=True)
    if os.path.exists(os.path.join(args.dir, "summary.json")):
        return 0
    path = os.path.join(args.dir, "state.json")
    state = {"step": 0, "starts": 0}
    if os.path.exists(path):
        with open(path) as f:
            state = json.load(f)
    stop = []
    for signum in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stop.append(number))
    state["starts"] += 1
    with open(os.path.join(args.dir, "starts.log"), "a") as f:  # after the handlers: a test may signal now
        f.write(f"{state['starts']} {state['step']}\n")
    print(f"start {state['starts']} at step {state['step']}", flush=True)
    while state["step"] < args.steps:
        time.sleep(args.step_seconds)
        state["step"] += 1
        if stop:
            break
    with open(path + ".tmp", "w") as f:  # written whole, then renamed: as a checkpoint is
        json.dump(state, f)
    os.replace(path + ".tmp", path)
    if state["step"] < args.steps:
        print(f"signal {stop[0]}: saved at step {state['step']}, exit 75", flush=True)
        return 75
    with open(os.path.join(args.dir, "summary.json"), "w") as f:
        json.dump(state, f)
    print(f"done: {state['step']} steps in {state['starts']} starts", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
