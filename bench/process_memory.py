"""Memory and CPU time of a process and of the processes below it, read from /proc (Linux), for the benchmarks.

A run is more than one process: the statistics stage fits in worker processes (children of a fork server that is a
child of the run's process, pipelines/statistics/workers.py), and a Spark run has its JVM below it. The resident
memory of the run's process alone leaves all of theirs out. Summing every process's RSS counts the pages they share
(a forked worker shares its parent's imported libraries) once per process; the proportional set size (PSS, from
/proc/<pid>/smaps_rollup) gives each process its share of a shared page, so the sum over the tree is the memory the
tree holds. Reading smaps_rollup walks the process's page tables under its memory-map lock, which the process's
own page faults need too: read every 50 ms it cost a 200,000-patient run 10% of its wall time (session 13), so the
benchmark reads the tree once a second (bench/run_benchmark.py RssSampler).
"""

from __future__ import annotations

import os
from collections import defaultdict


def _field_bytes(path: str, field: str) -> int | None:
    """A "<field>: <n> kB" line of a /proc file, in bytes; None when the file has no such line."""
    with open(path) as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def process_rss(pid: int | str = "self") -> int:
    """Resident memory of a process in bytes (0 if it is gone), from /proc/<pid>/status."""
    try:
        return _field_bytes(f"/proc/{pid}/status", "VmRSS") or 0
    except OSError:
        return 0


def process_pss(pid: int | str = "self") -> int:
    """Proportional set size of a process in bytes (its private pages plus its share of the pages it shares), from
    /proc/<pid>/smaps_rollup; its RSS where that is not readable; 0 if the process is gone."""
    try:
        pss = _field_bytes(f"/proc/{pid}/smaps_rollup", "Pss")
    except PermissionError:
        return process_rss(pid)
    except OSError:
        return 0
    return process_rss(pid) if pss is None else pss


CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int | str = "self", reaped_children: bool = False) -> float:
    """CPU seconds (user + system, every thread) a process has used, from /proc/<pid>/stat; 0.0 if it is gone. With
    `reaped_children`, also those of its children that ended and that it waited for (a pool's workers end into
    their parent's figure this way)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return 0.0
    # After "pid (comm)": state is field 3 of proc(5), utime 14, stime 15, cutime 16, cstime 17.
    fields = text[text.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped_children else 0)
    return ticks / CLOCK_TICKS_PER_SECOND


def descendants(root: int) -> dict[int, str]:
    """Every process below `root` in the process tree (children, their children, ...), pid -> command name."""
    children: dict[int, list[int]] = defaultdict(list)
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after its closing bracket.
        names[int(entry)] = text[text.index("(") + 1:text.rindex(")")]
        children[int(text[text.rindex(")") + 2:].split()[1])].append(int(entry))
    found: dict[int, str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = names[pid]
        pending.extend(children.get(pid, []))
    return found


def java_descendants(root: int) -> list[int]:
    """The java processes below `root` in the process tree (the local Spark session's JVM: pyspark starts it through
    spark-submit as a child of this process)."""
    return [pid for pid, name in descendants(root).items() if name == "java"]


def tree_pss(root: int, below: dict[int, str] | None = None) -> int:
    """PSS of `root` and the processes `below` it (pid -> command name; None: looked up now) in bytes: the memory
    the tree holds, each shared page counted once in all. A java process (a Spark JVM) counts its RSS instead:
    reading a JVM's smaps_rollup cost 34 ms of CPU at 1.8 GB resident (session 16), 3% of a core once a second and
    under the JVM's memory-map lock, and nearly all of a JVM's pages (heap, code cache) are its own, so its PSS is
    close to its RSS."""
    if below is None:
        below = descendants(root)
    return process_pss(root) + sum(process_rss(pid) if name == "java" else process_pss(pid)
                                   for pid, name in below.items())
