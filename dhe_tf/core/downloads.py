"""Whether a download can start, asked in seconds rather than minutes.

Offline, tensorflow-datasets and keras.applications retry a download for
minutes before they give up. Users need an answer at once, so before a
download we check that its host is reachable and, if not, fail with one line
naming what to pass instead (dhe_tf.core.errors.DataUnavailableError).
"""

import socket


def host_reachable(host, *, port=443, timeout=5.0):
  """Whether a TCP connection to `host:port` opens within `timeout` seconds."""
  try:
    socket.create_connection((host, port), timeout=timeout).close()
  except OSError:
    return False
  return True
