"""What a store directory holds beyond ``store/``'s own files: names and format versions.

Why here: ``store/`` is the one owner of a store directory and its catalog (:mod:`iotscope.store.catalog`)
must say where each dataset is and which format it is in; it may not import the stages that write them (``survey/``,
``notify/`` come after ``store/``). So the writers import their file names and versions from here, and
a change is one edit in one place. (The analysis datasets' versions are in
:mod:`iotscope.store.datasets`, beside their schemas.)

A version is bumped whenever the layout or the meaning of a column changes; a reader meeting
another version refuses the file, never guesses.
"""

from __future__ import annotations

#: ``packets/`` and ``state.sqlite`` (its ``user_version``). 2: packets gained the ``tool`` column.
STORE_FORMAT = 2

#: ``findings/`` (schema: ``iotscope.survey.findings.FINDINGS_SCHEMA``). Columns added since 1 are
#: nullable and read as null from older files (``remaining``, ``hostname``), so this is still 1.
FINDINGS_FORMAT = 1

#: ``notify.sqlite`` (its ``user_version``).
NOTIFY_FORMAT = 1

#: Written by ``iotscope.survey.findings`` (Parquet) and ``iotscope.survey.journal`` (which files count).
FINDINGS_DIR = "findings"
SURVEY_STATE_FILE = "survey_state.sqlite"

#: Written by ``iotscope.notify.database``.
NOTIFY_FILE = "notify.sqlite"
