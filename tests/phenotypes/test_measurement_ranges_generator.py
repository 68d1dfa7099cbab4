"""The generator's truth restates the library's plausible ranges on purpose (an oracle does not read the code it
checks); this test keeps the two statements equal, so that a value the phenotypes ignore is ignored by the truth too."""

from pipelines.phenotypes import phenotype_library
from pipelines.synthetic import catalog

SODIUM, POTASSIUM = ("LOINC", "2951-2"), ("LOINC", "2823-3")
MAGNESIUM_MMOL_L = ("LOINC", "2601-3")
ABI = ("SNOMED", "446841001")


def test_the_generator_truth_uses_the_library_plausible_ranges():
    library = phenotype_library()
    # The truth states the electrolytes in mmol/L; the library's range of the mmol/L code is in mmol/L too.
    for phenotype_id, code in (("hyponatremia_lab", SODIUM), ("hypokalemia_lab", POTASSIUM),
                               ("hypomagnesemia_lab", MAGNESIUM_MMOL_L)):
        low, high = catalog.LAB_THRESHOLDS[phenotype_id]["plausible_mmol_l"]
        library_low, library_high, low_inclusive = library.plausible_range(*code)
        if phenotype_id == "hypomagnesemia_lab":  # the library's canonical unit is mg/dL
            factor = catalog.MG_PER_DL_PER_MMOL_PER_L
            library_low, library_high = round(library_low / factor, 6), round(library_high / factor, 6)
        assert (low, high, True) == (library_low, library_high, low_inclusive), phenotype_id
    low, high = catalog.ABI_PLAUSIBLE
    assert (low, high, catalog.ABI_PLAUSIBLE_LOW_INCLUSIVE) == library.plausible_range(*ABI)
