"""The multi-site network: one Dagster partition per site (or single extract) of the study assets, and the pooled
cross-site estimates (fixed- and random-effects meta-analysis of each site's published results.associations).

    sites.py     the `site` dynamic partitions definition, site names, where site databases go
    pooling.py   pooled estimates from per-site rows, with small-cell suppression of the summed counts
    assets.py    the network asset and job: reads every site's published database, publishes the pooled one

See docs/operations.md, "Sites and the pooled estimate".
"""
