"""The passes ``iotscope analyze`` runs, in this order. A new pass: write its module, add it here."""

from __future__ import annotations

from iotscope.telescope.passes.attacks import AttacksPass
from iotscope.telescope.passes.base import AnalysisPass
from iotscope.telescope.passes.events import EventsPass
from iotscope.telescope.passes.series import PortSeriesPass
from iotscope.telescope.passes.settings import AnalysisSettings
from iotscope.telescope.passes.sources import SourceHoursPass


def default_passes(settings: AnalysisSettings) -> tuple[AnalysisPass, ...]:
    """Every pass, configured."""
    return (
        EventsPass(settings.event_idle_s),
        AttacksPass(settings),
        PortSeriesPass(settings.series_bucket_s),
        SourceHoursPass(),
    )
