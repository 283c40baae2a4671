"""keidash's exceptions: one root, each subclass also the matching built-in."""


class KeidashError(Exception):
    "Base class for every error keidash raises on purpose."


class ConfigError(KeidashError, ValueError):
    "A configuration file, URL or command-line value is wrong; the message says how."


class ProfileError(KeidashError, ValueError):
    "A vehicle profile is missing, unknown or physically implausible."


class SourceError(KeidashError, OSError):
    "A source could not be opened (port missing, permission denied, adapter silent)."
