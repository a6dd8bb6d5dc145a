"""Concurrent calls gathered into one batched call, and a readers-writer lock.

`Batcher` lets many threads (the service's request threads) each submit one
item and wait for its result, while one worker thread runs the batched
function on every item waiting at that moment: with one request in flight a
batch is that request alone (no added latency), with 16 in flight the model
runs once for many of them. Nothing waits for a batch to fill.
"""

import concurrent.futures
import contextlib
import queue
import threading

from dhe_tf.core import checks


class Batcher:
  """Runs `function(items) -> results` on batches of submitted items.

  Args:
    function: takes a list of items, returns a list of as many results, in
      order. An exception it raises is raised in every submitter of the
      batch.
    max_batch: the most items per call.
    name: the worker thread's name.
  """

  def __init__(self, function, *, max_batch=64, name="batcher"):
    self._function = function
    self._max_batch = checks.positive_int("max_batch", max_batch)
    self._queue = queue.SimpleQueue()
    self.batch_sizes = []  # The size of each call, for measurement.
    self._thread = threading.Thread(target=self._work, name=name,
                                    daemon=True)
    self._thread.start()

  def submit(self, item):
    """A concurrent.futures.Future of `item`'s result."""
    future = concurrent.futures.Future()
    self._queue.put((item, future))
    return future

  def __call__(self, item):
    """`item`'s result, computed in a batch (blocks until it is)."""
    return self.submit(item).result()

  def close(self):
    self._queue.put(None)
    self._thread.join()

  def _work(self):
    while True:
      first = self._queue.get()
      if first is None:
        return
      batch = [first]
      while len(batch) < self._max_batch:
        try:
          waiting = self._queue.get_nowait()
        except queue.Empty:
          break
        if waiting is None:
          self._queue.put(None)  # Finish this batch, then stop.
          break
        batch.append(waiting)
      if len(self.batch_sizes) < 100_000:
        self.batch_sizes.append(len(batch))
      try:
        results = self._function([item for item, _ in batch])
      except BaseException as e:  # pylint: disable=broad-except
        for _, future in batch:
          future.set_exception(e)
        continue
      for (_, future), result in zip(batch, results):
        future.set_result(result)


class ReadWriteLock:
  """Many readers at once, or one writer; a waiting writer goes first.

  Searches read the open index; a reload writes it: it waits for the
  searches in flight to finish, and searches that arrive meanwhile wait
  for the new index, so none is dropped or sees a closed one.
  """

  def __init__(self):
    self._condition = threading.Condition()
    self._readers = 0
    self._writing = False
    self._writers_waiting = 0

  @contextlib.contextmanager
  def read(self):
    with self._condition:
      while self._writing or self._writers_waiting:
        self._condition.wait()
      self._readers += 1
    try:
      yield
    finally:
      with self._condition:
        self._readers -= 1
        self._condition.notify_all()

  @contextlib.contextmanager
  def write(self):
    with self._condition:
      self._writers_waiting += 1
      while self._writing or self._readers:
        self._condition.wait()
      self._writers_waiting -= 1
      self._writing = True
    try:
      yield
    finally:
      with self._condition:
        self._writing = False
        self._condition.notify_all()
