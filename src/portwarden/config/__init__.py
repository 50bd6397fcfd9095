"""Configuration: the PortSentry file format, our own keys, and the ignore list."""

from portwarden.config.errors import ConfigError
from portwarden.config.load import load_settings
from portwarden.config.settings import Settings
from portwarden.config.values import BlockMode, Modes, TcpMode, UdpMode

__all__ = ["BlockMode", "ConfigError", "Modes", "Settings", "TcpMode", "UdpMode", "load_settings"]
