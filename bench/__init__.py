"""`python -m bench`: round-trip counts, KMS calls, read overhead, cold import and
package size, measured against a local stack this process starts for itself.

Counts come from the moto server's own counter (devstack/moto_server.py), never
from client-side hooks; see bench/README.md for what each figure means.
"""
