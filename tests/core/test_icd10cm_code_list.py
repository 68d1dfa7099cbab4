"""The ICD-10-CM codes the phenotype loader and the data-quality suites check against are read from the code list
the pinned simple-icd-10-cm package ships, without importing the package (which parses the whole release, about
two seconds of CPU in every process that builds the definitions or runs a check): the same codes as the package's
own tree, and a process that loads the phenotype library and the quality runner never imports it."""

import subprocess
import sys

from pipelines.vocabularies import code_problem, icd10cm_codes
from tests.support.paths import REPO_ROOT


def test_the_code_list_holds_exactly_the_categories_and_subcategories_of_the_package():
    import simple_icd_10_cm as icd10cm

    package = {code for code in icd10cm.get_all_codes(True) if icd10cm.is_category_or_subcategory(code)}
    assert icd10cm_codes() == package
    assert len(package) > 90_000
    # is_valid_item, which the loader asked before, agrees on every code and on a few that do not exist.
    assert all(icd10cm.is_valid_item(code) for code in icd10cm_codes())
    for missing in ("R25.7", "M62.839", "E87.9", "R25.4"):
        assert missing not in icd10cm_codes() and not icd10cm.is_valid_item(missing)
        assert "does not exist in the CMS release" in code_problem("ICD10CM", missing, "exact")
    assert code_problem("ICD10CM", "R25.2", "exact") is None and code_problem("ICD10CM", "R25", "prefix") is None


def test_the_phenotype_library_and_the_checks_load_without_parsing_the_release():
    script = ("import sys\n"
              "from pipelines.phenotypes.loader import phenotype_library\n"
              "from pipelines.quality.valid_codes import valid_icd10cm_codes\n"
              "import pipelines.quality.runner\n"
              "phenotype_library(); valid_icd10cm_codes()\n"
              "print(sorted(m for m in sys.modules if m.startswith('simple_icd_10_cm')))\n")
    shown = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                           check=True).stdout
    assert shown.strip() == "[]"
