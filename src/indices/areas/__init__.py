"""Areas and disclosure: counts per LSOA, authority and England, what is withheld, and the control that lets them out."""
