"""Helpers for scripts/bench/replay-vs-llamastack.sh (standard library only).

  check NAME CHAT_RECORD CHAT_REPLAY STREAM_RECORD STREAM_REPLAY
      the replayed chat answer and stream carry what was recorded (same message, same finish
      reason; same number of SSE events and the same text); prints a one-line summary per request
  cpu-snapshot PGID / cpu-share PGID SNAPSHOT TIMES_BEFORE TIMES_AFTER
      CPU used during a wrk run by the server (process group PGID), by wrk (the shell's children, from
      bash `times` before and after) and by everything else on the machine, in % of one core
  settle MAX_SECONDS
      waits until the machine is quiet (under 10% of one core busy over half a second: a server
      may go on working after its load ends, e.g. draining a write queue) or MAX_SECONDS pass;
      prints the seconds waited and whether it settled
  table WORK OUT_MD [--duration S --rounds N --conns-chat "1 8 32" --conns-stream "1 8" ...]
      reads WORK/wrk/{ls,ours,nginx}-{chat,stream}-N-rR.txt (wrk --latency output of round R),
      prints the markdown table (each server's median over the rounds, each ratio the median of
      the rounds' ratios) and writes it to OUT_MD
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import time


def sse_events(path):
    """The `data:` payloads of an SSE body, in order."""
    text = open(path, encoding="utf-8").read()
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def stream_summary(path):
    events = sse_events(path)
    text, finish = "", None
    for ev in events:
        if ev == "[DONE]":
            continue
        chunk = json.loads(ev)
        if "error" in chunk:
            raise SystemExit(f"{path}: stream carries an error: {ev[:500]}")
        for choice in chunk.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
            finish = choice.get("finish_reason") or finish
    return {"events": len(events), "done": "[DONE]" in events, "text": text, "finish": finish,
            "bytes": os.path.getsize(path)}


def chat_summary(path):
    body = json.load(open(path, encoding="utf-8"))
    choice = body["choices"][0]
    return {"content": choice["message"]["content"], "finish": choice.get("finish_reason"),
            "bytes": os.path.getsize(path)}


def check(args):
    ok = True
    rec, rep = chat_summary(args.chat_record), chat_summary(args.chat_replay)
    if (rec["content"], rec["finish"]) != (rep["content"], rep["finish"]):
        print(f"chat: recorded {rec} but replayed {rep}")
        ok = False
    else:
        print(f"chat {rep['content']!r} ({rep['bytes']} B);")
    rec, rep = stream_summary(args.stream_record), stream_summary(args.stream_replay)
    if (rec["events"], rec["text"], rec["finish"]) != (rep["events"], rep["text"], rep["finish"]):
        print(f"stream: recorded {rec} but replayed {rep}")
        ok = False
    else:
        done = "" if rep["done"] else ", no [DONE]"
        print(f"stream {rep['events']} events{done} ({len(rep['text'])} chars, {rep['bytes']} B)")
    return 0 if ok else 1


def machine_busy():
    """(monotonic s, jiffies the machine's CPUs were busy since boot)."""
    mono = time.monotonic()
    fields = open("/proc/stat").readline().split()[1:]
    vals = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal [guest guest_nice, already inside user/nice]
    return mono, sum(vals[:8]) - vals[3] - vals[4]


def cpu_snapshot(pgid):
    """(monotonic s, machine busy jiffies, jiffies of the processes in process group pgid)."""
    mono, busy = machine_busy()
    group = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()  # fields from `state` on
        if int(rest[2]) == pgid:
            group += int(rest[11]) + int(rest[12])  # utime, stime
    return mono, busy, group


def settle(args):
    hz = os.sysconf("SC_CLK_TCK")
    start = time.monotonic()
    mono0, busy0 = machine_busy()
    while True:
        time.sleep(0.5)
        mono1, busy1 = machine_busy()
        quiet = (busy1 - busy0) / hz / (mono1 - mono0) < 0.10
        waited = time.monotonic() - start
        if quiet or waited >= args.max_seconds:
            print(f"{waited:.1f} {'settled' if quiet else 'busy'}")
            return 0
        mono0, busy0 = mono1, busy1


def children_seconds(times_file):
    """user + sys of the shell's waited-for children, from bash's `times` output."""
    lines = open(times_file).read().strip().splitlines()
    return sum(int(m) * 60 + float(sec) for m, sec in re.findall(r"(\d+)m([\d.]+)s", lines[1]))


def cpu_share(args):
    hz = os.sysconf("SC_CLK_TCK")
    m0, b0, g0 = (float(x) for x in args.before.split())
    m1, b1, g1 = cpu_snapshot(args.pgid)
    wall = m1 - m0
    server = (g1 - g0) / hz
    wrk = children_seconds(args.times_after) - children_seconds(args.times_before)
    other = max(0.0, (b1 - b0) / hz - server - wrk)
    print(f"server {100 * server / wall:.0f} / wrk {100 * wrk / wall:.0f} / other {100 * other / wall:.0f}")
    return 0


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(path):
    """Requests/sec, p50 in ms, and the error lines of one `wrk --latency` run."""
    text = open(path, encoding="utf-8").read()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    total = re.search(r"(\d+) requests in", text)
    errors = [line.strip() for line in text.splitlines()
              if line.strip().startswith(("Non-2xx", "Socket errors"))]
    if not rps or not p50:
        raise SystemExit(f"cannot read wrk output {path}:\n{text}")
    return {"rps": float(rps.group(1)), "p50_ms": float(p50.group(1)) * UNITS[p50.group(2)],
            "requests": int(total.group(1)) if total else None, "errors": errors}


def fmt_rps(v):
    return f"{v:,.0f}"


def fmt_ms(v):
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v:.3f} ms"


def fmt_ratio(v):
    if v >= 10:
        return f"{v:.0f}x"
    if v >= 1:
        return f"{v:.1f}x"
    return f"{v:.2f}x"


def table(args):
    work = args.work

    def runs(name, kind, conns):
        """The wrk runs of one server on one row, by round (None for a missing round)."""
        out = []
        for r in range(1, args.rounds + 1):
            path = os.path.join(work, "wrk", f"{name}-{kind}-{conns}-r{r}.txt")
            out.append(parse_wrk(path) if os.path.exists(path) else None)
        return out

    def wrk(name, kind, conns):
        """A server's median over its rounds, with every round's requests/s and errors."""
        done = [r for r in runs(name, kind, conns) if r]
        if not done:
            return None
        return {"rps": statistics.median(r["rps"] for r in done),
                "p50_ms": statistics.median(r["p50_ms"] for r in done),
                "rounds": [r["rps"] for r in done],
                "errors": [e for r in done for e in r["errors"]]}

    def ratio(a, b, kind, conns):
        """The median of the rounds' ratios of a's requests/s to b's (the same round's runs)."""
        pairs = [x["rps"] / y["rps"] for x, y in zip(runs(a, kind, conns), runs(b, kind, conns))
                 if x and y and y["rps"]]
        return (statistics.median(pairs), pairs) if pairs else (None, [])

    ours_stream = stream_summary(os.path.join(work, "out", "ours-stream-replay.sse"))
    ls_stream = stream_summary(os.path.join(work, "out", "ls-stream-replay.sse"))
    ours_chat = chat_summary(os.path.join(work, "out", "ours-chat-replay.json"))
    ls_chat = chat_summary(os.path.join(work, "out", "ls-chat-replay.json"))

    rows, notes, results, rounds = [], [], {}, []
    header = ("| request | conns | Llama Stack req/s | ours req/s | ours/LS | LS p50 | ours p50 "
              "| nginx req/s | ours/nginx |")
    rows.append(header)
    rows.append("|" + "---|" * 9)
    for kind in ("chat", "stream"):
        conns_list = (args.conns_chat if kind == "chat" else args.conns_stream).split()
        for i, conns in enumerate(conns_list):
            ls, ours = wrk("ls", kind, conns), wrk("ours", kind, conns)
            nginx = wrk("nginx", kind, conns) if kind == "chat" else None
            vs_ls, vs_ls_rounds = ratio("ours", "ls", kind, conns)
            vs_nginx, vs_nginx_rounds = ratio("ours", "nginx", kind, conns) if nginx else (None, [])
            results[(kind, conns)] = (ls, ours, nginx, vs_ls, vs_nginx)
            rounds.append(f"{kind} at {conns}: ours/LS " + ", ".join(fmt_ratio(r) for r in vs_ls_rounds)
                          + ("; ours/nginx " + ", ".join(f"{100 * r:.0f}%" for r in vs_nginx_rounds)
                             if vs_nginx_rounds else ""))
            for name, r in (("Llama Stack", ls), ("ours", ours), ("nginx", nginx)):
                if r and r["errors"]:
                    notes.append(f"{kind} at {conns} conns, {name}: " + "; ".join(r["errors"]))
            label = kind
            if kind == "stream" and i == 0:
                label = f"stream ({ours_stream['events']} events)"
            cells = [label, conns,
                     fmt_rps(ls["rps"]) if ls else "-", fmt_rps(ours["rps"]) if ours else "-",
                     fmt_ratio(vs_ls) if vs_ls else "-",
                     fmt_ms(ls["p50_ms"]) if ls else "-", fmt_ms(ours["p50_ms"]) if ours else "-",
                     fmt_rps(nginx["rps"]) if nginx else "",
                     f"{100 * vs_nginx:.0f}%" if vs_nginx else ""]
            rows.append("| " + " | ".join(cells) + " |")

    def get(kind, conns, who):
        r = results.get((kind, conns))
        return r and r[("ls", "ours", "nginx", "vs_ls", "vs_nginx").index(who)]

    targets = []
    s1 = get("stream", "1", "ours")
    if s1:
        targets.append(f"streamed replay p50 at 1 connection under 0.5 ms: {fmt_ms(s1['p50_ms'])} "
                       f"({'met' if s1['p50_ms'] < 0.5 else 'not met'})")
    r = get("stream", "8", "vs_ls")
    if r:
        targets.append(f"streamed replay at 8 connections at least 50x Llama Stack: {fmt_ratio(r)} "
                       f"({'met' if r >= 50 else 'not met'})")
    shares = [(conns, get("chat", conns, "vs_nginx")) for conns in args.conns_chat.split()]
    shares = [(c, s) for c, s in shares if s]
    if shares:
        met = all(s >= 0.5 for _, s in shares)
        targets.append("chat replay at least 50% of nginx: "
                       + ", ".join(f"{100 * s:.0f}% at {c}" for c, s in shares)
                       + f" ({'met' if met else 'not met'})")
    r = get("chat", "8", "vs_ls")
    if r:
        targets.append(f"chat replay at 8 connections at least 100x Llama Stack: {fmt_ratio(r)} "
                       f"({'met' if r >= 100 else 'not met'})")

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    busy = "?"
    if args.busy and os.path.exists(args.busy):
        names = {"ls": "Llama Stack", "ours": "ours", "nginx": "nginx", "all": "all servers idle"}
        busy = ", ".join(f"{names.get(n, n)} {p}%" for n, p in
                         (line.split() for line in open(args.busy, encoding="utf-8") if line.strip()))
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    waits = {}
    if args.settle and os.path.exists(args.settle):
        for line in open(args.settle, encoding="utf-8"):
            parts = line.split()
            if len(parts) >= 5:
                waits.setdefault(parts[0], []).append(float(parts[4]))
    names = {"ls": "Llama Stack", "ours": "ours", "nginx": "nginx"}
    settled = "; ".join(f"after {names.get(n, n)}'s runs up to {max(w):.1f} s (median "
                        f"{statistics.median(w):.1f} s)" for n, w in waits.items())
    lines = [
        "## Replay side by side: ours vs Llama Stack vs nginx",
        "",
        f"`scripts/bench/replay-vs-llamastack.sh`, {now}, commit {args.commit}, "
        f"{os.cpu_count()} cores ({platform.machine()}), Llama Stack {args.ls_version} "
        f"(Python 3.12, JSON logs), model `{args.model}` on llama-server for the recordings, "
        f"replay with the provider on a dead port; `wrk -t1 -cN -d{args.duration}s --latency` with "
        f"keep-alive, one server at a time after a 2 s warm-up; nginx serves our replayed chat "
        f"bytes as a static file. The three servers stay up and take turns row by row for "
        f"{args.rounds} rounds: req/s and p50 are a server's medians, a ratio is the median of the "
        f"rounds' ratios.",
        "",
        *rows,
        "",
        "Ratios by round:",
        "",
        *[f"- {line}" for line in rounds],
        "",
        f"Chat: ours {ours_chat['bytes']} B, Llama Stack {ls_chat['bytes']} B per answer. "
        f"Stream ({len(ours_stream['text'])} chars of text): ours {ours_stream['events']} SSE events "
        f"({ours_stream['bytes']} B), Llama Stack {ls_stream['events']} "
        f"({ls_stream['bytes']} B{'' if ls_stream['done'] else ', no [DONE]'}). "
        f"CPU busy with other work before the load (1 s sample): {busy}; "
        f"load average at the end {load}; the whole run took {args.elapsed} s. Each run starts "
        f"on a quiet machine (under 10% of a core busy): waited {settled or '?'}.",
        "",
        "Issue 13's targets:",
        "",
        *[f"- {t}" for t in targets],
    ]
    cpu_rows = []
    for kind in ("chat", "stream"):
        for conns in (args.conns_chat if kind == "chat" else args.conns_stream).split():
            for r in range(1, args.rounds + 1):
                cells = [kind, conns, str(r)]
                for name in ("ls", "ours", "nginx"):
                    path = os.path.join(work, "wrk", f"{name}-{kind}-{conns}-r{r}.cpu")
                    cells.append(open(path).read().strip() if os.path.exists(path) else "")
                cpu_rows.append("| " + " | ".join(cells) + " |")
    lines += ["", "CPU during each run, in % of one core (the server's process group, wrk, everything "
              "else on the machine):", "",
              "| request | conns | round | Llama Stack | ours | nginx |", "|---|---|---|---|---|---|",
              *cpu_rows]
    if notes:
        lines += ["", "wrk reported errors:", "", *[f"- {n}" for n in notes]]
    md = "\n".join(lines) + "\n"
    sys.stdout.write(md)
    with open(args.out_md, "w", encoding="utf-8") as f:
        f.write(md)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("name")
    c.add_argument("chat_record")
    c.add_argument("chat_replay")
    c.add_argument("stream_record")
    c.add_argument("stream_replay")
    t = sub.add_parser("table")
    t.add_argument("work")
    t.add_argument("out_md")
    t.add_argument("--duration", default="5")
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--conns-chat", default="1 8 32")
    t.add_argument("--conns-stream", default="1 8")
    t.add_argument("--ls-version", default="?")
    t.add_argument("--model", default="?")
    t.add_argument("--commit", default="?")
    t.add_argument("--elapsed", default="?")
    t.add_argument("--busy", default=None)
    t.add_argument("--settle", default=None)
    c = sub.add_parser("settle")
    c.add_argument("max_seconds", type=float)
    c = sub.add_parser("cpu-snapshot")
    c.add_argument("pgid", type=int)
    c = sub.add_parser("cpu-share")
    c.add_argument("pgid", type=int)
    c.add_argument("before")
    c.add_argument("times_before")
    c.add_argument("times_after")
    args = ap.parse_args()
    if args.cmd == "cpu-snapshot":
        print(" ".join(str(x) for x in cpu_snapshot(args.pgid)))
        return 0
    if args.cmd == "cpu-share":
        return cpu_share(args)
    if args.cmd == "settle":
        return settle(args)
    return check(args) if args.cmd == "check" else table(args)


if __name__ == "__main__":
    sys.exit(main())
