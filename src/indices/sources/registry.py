"""The six sources and what the pipeline needs of each."""

GP_SOURCES = ("gp_patients", "gp_events", "gp_medications")


NATIONAL_PERSON_SOURCES = (*GP_SOURCES, "hes_apc")  # national extracts the persons are made of


AUTHORITY_SOURCES = ("asc_cld",)  # one extract per local authority, conformed one at a time


PERSON_SOURCES = (*NATIONAL_PERSON_SOURCES, *AUTHORITY_SOURCES)  # what the measures read


SOURCES = (*PERSON_SOURCES, "fingertips")


REQUIRED_SOURCES = GP_SOURCES  # without these there is no population and no eFI
