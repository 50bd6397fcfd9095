"""Engine configuration from Settings."""

from portwarden.config import Settings
from portwarden.config.ignore import IgnoreList
from portwarden.detect.engine import EngineConfig, ScandetdModel


def engine_config(settings: Settings, ignore: IgnoreList) -> EngineConfig:
    scandetd = None
    if settings.scan_count_threshold:
        scandetd = ScandetdModel(
            settings.scan_count_threshold, settings.scan_interval, settings.scan_flood_detection
        )
    return EngineConfig(
        trigger=settings.scan_trigger,
        window_s=settings.scan_trigger_window,
        scandetd=scandetd,
        ignore=ignore,
        tcp_rules=settings.tcp_scan_ignore,
        udp_rules=settings.udp_scan_ignore,
        scan_end_quiet_s=settings.scan_end_quiet,
    )
