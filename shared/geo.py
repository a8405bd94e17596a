"""IP address -> ISO country code, from the database shipped inside the geoip2fast wheel.

Used by ingest for every click, and by the edge only when a link routes by country and no
trusted CDN header names the visitor's country: the table costs ~50 MB per process, which
the edge's memory budget cannot carry in every worker. (The one place `shared` reaches
past msgspec/xxhash/stdlib, and only when called.)
"""

from __future__ import annotations

import os
from typing import Any

# IPv4+IPv6: mobile carriers serve much of their traffic over IPv6.
_DATA_FILE = "geoip2fast-ipv6.dat.gz"


def load() -> Any:
    # The import sets PYTHONWARNINGS=ignore in os.environ, which every child process would
    # then inherit: put the environment back. An absolute path, because given a bare file
    # name the library first looks in the current directory, and the file is a pickle.
    saved = {k: os.environ.get(k) for k in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    import geoip2fast

    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return geoip2fast.GeoIP2Fast(
        geoip2fast_data_file=os.path.join(geoip2fast.__path__[0], _DATA_FILE)
    )


def country(db: Any, ip: str) -> str:
    """The country code of `ip`, or "" when unknown, private or malformed. Never raises."""
    try:
        code = db.lookup(ip).country_code
    except Exception:  # it reports errors as codes, but nothing here may break a caller
        return ""
    # "--" is private / not found, "" is invalid.
    return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else ""
