"""The baseline: the spec's `batch_runner.py` scheduler, as its processing spec describes it.

`python bench/spec_loop.py CONFIG.json [--phase F]` loads the spec's JSON config, schedules
every enabled job with the `schedule` library (interval: `every(n).seconds`, daily:
`every().day.at(t)`, weekly: `every().<day>`), then loops `schedule.run_pending();
time.sleep(1)` until SIGINT/SIGTERM. A due job runs inside the loop (`subprocess.run`, shell,
output captured, 30-minute timeout); its state is saved back into the config file and its
result appended to `logs/batch/batch_YYYYMMDD.jsonl`, as the spec says.

`--phase F` (0 <= F < 1) enters the loop when the wall clock's fraction of a second is F. A
one-second loop's lateness depends on that phase, which a real deployment gets by chance; the
benchmark runs a few loops at stratified phases so the baseline is a fair sample of it.

Only the standard library and `schedule` are used, like the spec.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import schedule


class BatchRunner:
    def __init__(self, config_path: str) -> None:
        self.config_path = Path(config_path)
        self.jobs: dict[str, dict] = {}
        self.running = False
        self._load_job_config()
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, _signum, _frame) -> None:
        self.running = False

    def _load_job_config(self) -> None:
        data = json.loads(self.config_path.read_text())
        for job in data["jobs"]:
            job.setdefault("enabled", True)
            job.setdefault("last_run", None)
            job.setdefault("last_status", None)
            job.setdefault("error_count", 0)
            self.jobs[job["name"]] = job

    def _save_job_config(self) -> None:
        self.config_path.write_text(json.dumps({"jobs": list(self.jobs.values())}, indent=2, ensure_ascii=False))

    def _setup_job_schedule(self, job: dict) -> None:
        if not job["enabled"]:
            return
        schedule.clear(job["name"])

        def job_func(job=job):
            self._run_job(job)

        kind, when = job["schedule_type"], job["schedule_time"]
        if kind == "interval":
            schedule.every(int(when)).seconds.do(job_func).tag(job["name"])
        elif kind == "daily":
            schedule.every().day.at(when).do(job_func).tag(job["name"])
        elif kind == "weekly":
            getattr(schedule.every(), when.lower()).do(job_func).tag(job["name"])

    def _run_job(self, job: dict) -> dict:
        start = dt.datetime.now()
        result = {"job_name": job["name"], "start_time": start.isoformat(), "end_time": None, "status": "running", "output": "", "error": None}
        try:
            proc = subprocess.run(job["command"], shell=True, capture_output=True, text=True, timeout=1800)
            result["output"] = proc.stdout
            if proc.returncode == 0:
                result["status"] = "success"
            else:
                result["status"] = "error"
                result["error"] = proc.stderr
        except subprocess.TimeoutExpired:
            result["status"] = "timeout"
            result["error"] = "timeout after 1800 s"
        except Exception as e:  # noqa: BLE001 - as the spec: any failure is an error result
            result["status"] = "error"
            result["error"] = str(e)
        result["end_time"] = dt.datetime.now().isoformat()
        job["last_run"] = result["start_time"]
        job["last_status"] = result["status"]
        job["error_count"] = 0 if result["status"] == "success" else job["error_count"] + 1
        self._save_job_config()
        self._save_job_result(result)
        if job["error_count"] >= 3:
            print(f"notification: {job['name']} failed {job['error_count']} times in a row", file=sys.stderr)
        return result

    def _save_job_result(self, result: dict) -> None:
        log_dir = Path("logs/batch")
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"batch_{dt.datetime.now():%Y%m%d}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(result, ensure_ascii=False) + "\n")

    def run_scheduler(self, phase: float | None = None) -> None:
        self.running = True
        for job in self.jobs.values():
            self._setup_job_schedule(job)
        print("ready", flush=True)
        if phase is not None:
            now = time.time()
            time.sleep((phase - now % 1.0) % 1.0)
        while self.running:
            schedule.run_pending()
            time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--phase", type=float, default=None)
    args = parser.parse_args()
    config = Path(args.config).resolve()
    os.chdir(config.parent)
    BatchRunner(str(config)).run_scheduler(args.phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
