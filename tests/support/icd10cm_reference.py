"""The independent ICD-10-CM reference the code tests check against: simple_icd_10_cm (the CMS release as a Python
package), imported at first use. The package parses the whole release when imported (about 4 CPU seconds); a test
module that imported it at its top made every pytest-xdist worker pay that while collecting, whether or not it ran
one of the few tests that ask."""

from __future__ import annotations

from types import ModuleType


def icd10cm() -> ModuleType:
    """The simple_icd_10_cm module (`icd10cm().is_valid_item("M79.1")`)."""
    import simple_icd_10_cm

    return simple_icd_10_cm
