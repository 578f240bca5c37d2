"""Daily ledger segments, sealed in S3 (schedule `ledger_archive`, 00:15 UTC).

For each tenant in the ops index of ledgers, every completed UTC day (by the
entries' `recorded` time, which never goes back, so a day is a contiguous run of
seqs) is written once to `s3://$EMR_LEDGER_BUCKET/ledger/<tenant>/<day>.ndjson`:
one line per entry, the entry's canonical JSON exactly as hashed, so
`sha256(line)` is the entry's hash and each line's `prev` is the hash of the line
before (the first line's, of the previous segment's last). The object is
encrypted with SSE-KMS (EMR_DATA_KEY_ID, else the bucket's default key) and
locked in compliance mode for EMR_LEDGER_RETENTION_DAYS (default 2,190: six
years): nobody, root included, can delete or overwrite it before then.

The tenant's cursor item remembers the last archived seq, hash and day; it is
advanced only after the object is stored, conditionally (two runs at once: one
wins). A run that stopped between the two finds the object there (the put is
conditional on the key being new) and only advances the cursor. A segment is
archived only if it links to the cursor and hashes correctly; otherwise the
tenant is skipped and logged (compliance runs $verify).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from botocore.exceptions import ClientError
from pynamodb.exceptions import UpdateError

from functions.common.observability import count, logger
from models import clock
from models import ledger as store
from models import ledger_index as index
from models.aws import client
from models.ledger import LedgerCursorItem, LedgerEntryItem

BUCKET_ENV = "EMR_LEDGER_BUCKET"
KEY_ENV = "EMR_DATA_KEY_ID"
RETENTION_ENV = "EMR_LEDGER_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 2190
GRACE = timedelta(minutes=10)  # a day is complete 10 minutes after midnight UTC (clock skew)
ALREADY_THERE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class SegmentBroken(Exception):
    """The entries to archive do not link up: not sealed."""


def segment_key(tenant: str, day: str) -> str:
    return f"ledger/{tenant}/{day}.ndjson"


def run(now: datetime | None = None) -> int:
    """Archive every completed day of every tenant; the number of segments written."""
    moment = now or clock.now()
    written = 0
    for tenant in index.ledger_tenants():
        try:
            written += archive_tenant(tenant, moment)
        except SegmentBroken as exc:
            logger.error("ledger archive: chain broken", extra={"tenant": tenant, "at": str(exc)})
            count("LedgerArchiveBlocked")
    return written


def _linked(item: LedgerEntryItem, seq: int, prev: str) -> str:
    """The entry's recorded day, once it is checked to follow (seq, prev)."""
    try:
        body = store.decode(item.entry)
        ok = body["prev"] == prev and body["seq"] == seq + 1 == int(item.seq)
        day = str(body["recorded"])[:10]
    except (ValueError, KeyError):
        ok, day = False, ""
    if not ok or store.digest(item.entry) != item.hash:
        raise SegmentBroken(f"seq {seq + 1}")
    return day


def archive_tenant(tenant: str, moment: datetime) -> int:
    """Seal the tenant's completed days not sealed yet. Every entry read is checked
    to follow the one before (the first, the cursor), and a day is sealed only once
    the entry after it has been seen, or the head names its last entry: a deleted
    entry at a day's end cannot shorten a sealed segment unnoticed."""
    cursor = index.read_cursor(tenant)
    if cursor is None:
        return 0
    complete_before = (moment - GRACE).date().isoformat()
    seq, prev = int(cursor.archived_seq), str(cursor.archived_hash)
    written, day = 0, ""
    segment: list[LedgerEntryItem] = []
    for item in store.chain(tenant, after_seq=seq):
        item_day = _linked(item, seq, prev)
        seq, prev = int(item.seq), item.hash
        if segment and item_day != day:
            if not _seal(cursor, day, segment):
                return written
            written, segment = written + 1, []
        if item_day >= complete_before:
            return written
        day = item_day
        segment.append(item)
    if segment and _at_head(tenant, seq, prev) and _seal(cursor, day, segment):
        written += 1
    return written


def _at_head(tenant: str, seq: int, last_hash: str) -> bool:
    """True when the head names the last entry read; False when entries were appended
    meanwhile (the day is sealed next time); SegmentBroken when the head disagrees."""
    head = store.read_head(tenant)
    if head.seq > seq:
        return False
    if head.seq < seq or head.hash != last_hash:
        raise SegmentBroken(f"head at seq {head.seq}")
    return True


def _seal(cursor: LedgerCursorItem, day: str, segment: list[LedgerEntryItem]) -> bool:
    """Store one day's segment and advance the cursor; False when another run did."""
    first, last = segment[0], segment[-1]
    retention = int(os.environ.get(RETENTION_ENV, DEFAULT_RETENTION_DAYS))
    params = {
        "Bucket": os.environ[BUCKET_ENV],
        "Key": segment_key(str(cursor.tenant), day),
        "Body": "".join(f"{item.entry}\n" for item in segment).encode("utf-8"),
        "ContentType": "application/x-ndjson",
        "ChecksumAlgorithm": "SHA256",
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": clock.now()
        + timedelta(days=retention),  # S3's clock, not `moment`
        "IfNoneMatch": "*",
        "Metadata": {
            "first-seq": str(int(first.seq)),
            "last-seq": str(int(last.seq)),
            "prev": str(cursor.archived_hash),
            "last-hash": last.hash,
        },
    }
    if os.environ.get(KEY_ENV):
        params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=os.environ[KEY_ENV])
    try:
        client("s3").put_object(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ALREADY_THERE:
            raise
    try:
        index.advance_cursor(cursor, day, int(last.seq), last.hash)
    except UpdateError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        return False  # another run advanced it
    return True
