"""`python -m pipelines.results_browser.screenshots`: the README's pictures from a published run.

Writes docs/images/forest_plot.png (the study's forest plot as the run drew it) and docs/images/report_summary.png
(headless Chromium's screenshot of the top of the study's HTML report: question, design and the summary), from the
published outputs folder. Run `make run` first; `make screenshots` does both.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path


def take_screenshots(outputs: Path, images: Path, study_id: str = "leg_cramps",
                     chromium: str | None = None) -> list[Path]:
    chromium = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    study = outputs / study_id
    if not (study / "report.html").exists():
        raise SystemExit(f"no report at {study / 'report.html'}: run `make run` first")
    images.mkdir(parents=True, exist_ok=True)
    forest = images / "forest_plot.png"
    shutil.copyfile(study / "forest_plot.png", forest)
    summary = images / "report_summary.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}", "--hide-scrollbars",
                        "--window-size=1200,1100", f"--screenshot={summary.resolve()}",
                        (study / "report.html").resolve().as_uri()],
                       check=True, capture_output=True, timeout=120, cwd=profile)
    return [forest, summary]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--outputs", type=Path, default=Path("build/leg_cramps_outputs"))
    parser.add_argument("--images", type=Path, default=Path("docs/images"))
    parser.add_argument("--study", default="leg_cramps")
    args = parser.parse_args(argv)
    for path in take_screenshots(args.outputs, args.images, args.study):
        print(path)


if __name__ == "__main__":
    main()
