-- The person table as at the reference date, exactly as the frailty definitions say: the
-- population at D (one covering registration, no death on or before D), age in completed years,
-- eFI deficits (coded on or before D; polypharmacy in the year to D) and HFRS (episodes starting
-- in the two years to D), with their categories and bands. Built by `persons_query`.
--
-- Parameters: $d, $one_year_before, $two_years_before (dates); $polypharmacy (its deficit id),
-- $substances (how many distinct substances make it); $deficits (how many deficits the eFI
-- divides by); $everyone, or the residents of $authorities (LAD codes) and, with $unlocated,
-- the persons of no known LSOA.
-- Views of the connection: register, events, medications, episodes (the conformed tables);
-- lsoa_lookup, efi_codes, efi_bands, hfrs_weights, hfrs_bands (reference data).
-- Filled in by `persons_query` (names, not values): the age expression, the residents'
-- condition (`RESIDENTS`), one flag column per eFI deficit, the twenty diagnosis positions.
WITH died AS (SELECT DISTINCT person_id FROM register WHERE date_of_death <= $d),
covering AS (
    SELECT *, row_number() OVER (
        PARTITION BY person_id
        ORDER BY registration_start DESC, lsoa11_code ASC NULLS LAST, practice_code
    ) AS pick
    FROM register
    WHERE registration_start <= $d
      AND (registration_end IS NULL OR registration_end > $d)
      AND person_id NOT IN (SELECT person_id FROM died)
),
population AS (
    SELECT c.person_id, c.lsoa11_code, g.lad19_code, c.sex, {age} AS age
    FROM covering c
    LEFT JOIN lsoa_lookup g USING (lsoa11_code)
    WHERE c.pick = 1 AND {residents}
),
older AS (SELECT person_id FROM population WHERE age >= 65),
coded AS (
    SELECT DISTINCT e.person_id, c.deficit_id
    FROM events e
    JOIN efi_codes c USING (snomed_code)
    WHERE e.event_date <= $d AND e.person_id IN (SELECT person_id FROM older)
),
polypharmacy AS (
    SELECT person_id, $polypharmacy AS deficit_id
    FROM medications
    WHERE issue_date > $one_year_before AND issue_date <= $d
      AND person_id IN (SELECT person_id FROM older)
    GROUP BY person_id
    HAVING count(DISTINCT substr(bnf_code, 1, 9)) >= $substances
),
present AS (SELECT * FROM coded UNION ALL SELECT * FROM polypharmacy),
flagged AS (
    SELECT p.person_id, p.lsoa11_code, p.lad19_code, p.sex, p.age,
           CASE WHEN p.age >= 65 THEN count(x.deficit_id) END AS efi_deficits,
           {deficit_flags}
    FROM population p LEFT JOIN present x USING (person_id)
    GROUP BY p.person_id, p.lsoa11_code, p.lad19_code, p.sex, p.age
),
episode_groups AS (
    SELECT DISTINCT person_id, substr(code, 1, 3) AS icd10_3char
    FROM (
        SELECT person_id, {diagnoses} FROM episodes
        WHERE epistart > $two_years_before AND epistart <= $d
          AND person_id IN (SELECT person_id FROM population WHERE age >= 75)
    ) UNPIVOT (code FOR position IN ({diagnoses}))
),
hfrs AS (
    SELECT person_id, sum(tenths) AS hfrs_tenths
    FROM episode_groups JOIN hfrs_weights USING (icd10_3char) GROUP BY person_id
),
measured AS (
    SELECT f.*, CASE WHEN f.age >= 75 THEN coalesce(h.hfrs_tenths, 0) END AS hfrs_tenths
    FROM flagged f LEFT JOIN hfrs h USING (person_id)
)
SELECT m.person_id, m.lsoa11_code, m.lad19_code, m.age, m.sex,
       m.efi_deficits,
       m.efi_deficits / $deficits AS efi,
       e.band AS efi_category,
       CAST(m.hfrs_tenths AS INTEGER) AS hfrs_tenths,
       h.band AS hfrs_band,
       m.* EXCLUDE (person_id, lsoa11_code, lad19_code, age, sex, efi_deficits, hfrs_tenths)
FROM measured m
LEFT JOIN efi_bands e ON m.efi_deficits BETWEEN e.lowest AND e.highest
LEFT JOIN hfrs_bands h ON m.hfrs_tenths BETWEEN h.lowest AND h.highest
ORDER BY m.person_id
