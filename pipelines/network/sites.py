"""Sites of the network: the `site` dynamic partitions of the study assets, and where each site's database goes.

Every study asset is partitioned by site (pipelines/definitions.py applies SITE_PARTITIONS to the whole study graph),
so the UI shows, per site, when its cohorts and estimates were last built. A site partition is registered by the
extract-drop sensor when a site's first drop arrives, by `legcramp-run` (named after the extract folder unless
--site is given) and by a study schedule (named after its extract folder). The run's resources say what it reads and
where it publishes; the partition key is the name under which its results are pooled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dagster as dg

from pipelines import paths

SITE_PARTITIONS = dg.DynamicPartitionsDefinition(name="site")
# The asset group of the network domain (pooled estimates); the study job selects everything else.
NETWORK_GROUP = "network"

# A site name becomes a partition key, a file name (<site>.duckdb) and a tag value: keep it to characters that are
# safe in all three. Matched against the whole name (fullmatch: `$` would also accept a name ending in a newline).
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SITE_NAME_RULE = "letters, digits, '.', '_' and '-', starting with a letter or digit"

# Where the extract-drop sensor publishes each site's database (<folder>/<site>.duckdb), and where the network job
# publishes the pooled one.
SITE_DATABASES_DIR = Path(os.environ.get("LEGCRAMP_SITE_DATABASES", paths.REPO_ROOT / "build" / "sites"))
NETWORK_DATABASE = Path(os.environ.get("LEGCRAMP_NETWORK_DATABASE", paths.REPO_ROOT / "build" / "network.duckdb"))


class SiteNameError(ValueError):
    """A name that cannot be a site (partition key, file name and tag)."""


def is_site_name(name: object) -> bool:
    return isinstance(name, str) and SITE_NAME.fullmatch(name) is not None


def check_site_name(name: str, what: str = "site name") -> str:
    if not is_site_name(name):
        raise SiteNameError(f"{what} {name!r} cannot name a site: use {SITE_NAME_RULE}")
    return name


def site_for_extract(extract_folder: Path) -> str:
    """The site a single extract is built as when nobody names one: the name of its folder."""
    name = Path(extract_folder).resolve().name
    return check_site_name(name, "extract folder name")


def site_database(site: str, databases_dir: Path = SITE_DATABASES_DIR) -> Path:
    return Path(databases_dir) / f"{check_site_name(site)}.duckdb"


def register_site(instance: dg.DagsterInstance, site: str) -> None:
    """Add the site's partition if it is new (idempotent), for callers that cannot return a partitions request."""
    if not instance.has_dynamic_partition(SITE_PARTITIONS.name, check_site_name(site)):
        instance.add_dynamic_partitions(SITE_PARTITIONS.name, [site])
