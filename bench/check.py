"""Independent check of a copy, used for every tool the benchmark runs: per folder, the
destination holds exactly the source's messages (same count, sizes, Message-IDs), with the
same flags (\\Recent aside) and the same received dates."""

from __future__ import annotations

from collections import Counter

import imapclient

ITEMS = [b"RFC822.SIZE", b"FLAGS", b"INTERNALDATE", b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]


def _folder_multiset(client: imapclient.IMAPClient, folder: str) -> Counter:
    client.select_folder(folder, readonly=True)
    uids = client.search("ALL")
    out: Counter = Counter()
    for i in range(0, len(uids), 2000):
        data = client.fetch(uids[i:i + 2000], ITEMS)
        for msg in data.values():
            header = msg.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"").strip()
            flags = tuple(sorted(f for f in msg[b"FLAGS"] if f != b"\\Recent"))
            when = msg[b"INTERNALDATE"]
            out[(header, msg[b"RFC822.SIZE"], flags, when.timestamp() if when else None)] += 1
    return out


def compare(src: imapclient.IMAPClient, dst: imapclient.IMAPClient) -> list[str]:
    """Problems found (empty when the copy is exact)."""
    problems = []
    dst_names = {f[2] for f in dst.list_folders()}
    for flags, _delim, name in src.list_folders():
        if b"\\Noselect" in flags or b"\\NonExistent" in flags:
            continue
        if name not in dst_names:
            problems.append(f"{name}: missing on the destination")
            continue
        a, b = _folder_multiset(src, name), _folder_multiset(dst, name)
        if a != b:
            missing = sum((a - b).values())
            extra = sum((b - a).values())
            problems.append(f"{name}: {missing} missing or changed, {extra} extra or changed "
                            f"(source {sum(a.values())}, destination {sum(b.values())})")
    return problems
