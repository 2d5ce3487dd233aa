"""Saves a picture of one trace in Arize Phoenix's UI: the trace that holds an MCP tool call
(`execute_tool ...`), i.e. the driver's Responses tool call, client and server spans together.
Uses headless Chromium (Debian's `chromium`). Called by test-plan.sh --screenshot.

Usage: screenshot.py PHOENIX_URL OUT.png
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request


def get_json(url):
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.load(answer)


def main():
    base, out = sys.argv[1].rstrip("/"), sys.argv[2]
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("no Chromium on PATH: install Debian's `chromium` (apt-get install chromium)")
    project = next(p for p in get_json(f"{base}/v1/projects")["data"] if p["name"] == "default")
    spans = get_json(f"{base}/v1/projects/default/spans/otlpv1?limit=1000")["data"]
    tool = next((s for s in spans if s["name"].startswith("execute_tool ")), None)
    if tool is None:
        sys.exit("Phoenix holds no `execute_tool` span: nothing to show")
    url = f"{base}/projects/{project['id']}/traces/{tool['trace_id']}"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([
            browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--window-size=1600,1000", "--virtual-time-budget=20000",
            f"--screenshot={os.path.abspath(out)}", url,
        ], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    print(f"screenshot of {url} saved to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
