"""Runs scripts in worker processes, never in the web process.

dispatcher -> pool -> (socketpair, framed messages) -> worker. What a worker sends back is
parsed as data (JSON headers and raw NumPy buffers), never unpickled.
"""
