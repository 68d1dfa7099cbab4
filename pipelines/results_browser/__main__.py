"""`python -m pipelines.results_browser --db build/leg_cramps.duckdb`: serve the results browser on 127.0.0.1."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import uvicorn

from pipelines.results_browser.app import create_app
from pipelines.statistics.presentation import results_browser_base_url


def main(argv: list[str] | None = None) -> None:
    default = urlsplit(results_browser_base_url())
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="build/leg_cramps.duckdb", help="the published database (read-only)")
    parser.add_argument("--host", default=default.hostname or "127.0.0.1")
    parser.add_argument("--port", type=int, default=default.port or 8050)
    args = parser.parse_args(argv)
    print(f"results browser: http://{args.host}:{args.port}/ (database {args.db}, read-only)", flush=True)
    uvicorn.run(create_app(args.db), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
