#!/usr/bin/env python3
"""The rolling-upgrade check (scripts/upgrade-check): processes of the previous
release and of this one on one SQLite file and one memcached, as during a rolling
deploy, each a `peer.rs` built against its release.

Phases: the previous release alone fills every node; then both run, every write
through a process picked at random, and after each write both processes read the
categories it touched (one node, and two nodes in one fetch) and compare with the
database; then the previous release stops and this one carries on alone. Any read
that differs from the database at that moment fails the check (exit 1). At the end
of each phase it counts the index nodes in memcached by header (`#3`: the previous
release's format, `#4`: this one's).
"""

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

CATEGORIES = 8
ROWS = 40


class Peer:
    """One store process: a line in, a line out."""

    def __init__(self, name, binary, sqlite, memcached):
        self.name = name
        self.proc = subprocess.Popen([binary, sqlite, memcached], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            sys.exit(f"{self.name} died on {line!r}")
        return answer.strip()

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memcached_command(port, command):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(command)
        data = b""
        while not (data.endswith(b"END\r\n") or data.endswith(b"ERROR\r\n")):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        return data


def node_formats(port):
    """How many cached index nodes carry each header."""
    dump = memcached_command(port, b"lru_crawler metadump all\r\n").decode()
    keys = [urllib.parse.unquote(w[4:]) for line in dump.splitlines() for w in line.split() if w.startswith("key=")]
    formats = {}
    for key in keys:
        value = memcached_command(port, f"get {key}\r\n".encode())
        body = value.split(b"\r\n", 1)[1] if value.startswith(b"VALUE") else b""
        if body[:1] == b"#":
            tag = body[:2].decode()
            formats[tag] = formats.get(tag, 0) + 1
    return formats


class Check:
    def __init__(self, rng):
        self.rng = rng
        self.rows = {}  # id -> category, or absent when deleted
        self.reads = 0

    def verify(self, peers, a, b):
        """Every peer reads category a, and a and b in one fetch, as the database has them."""
        for peer in peers:
            truth_a = peers[0].ask(f"truth {a} {a}")
            got = peer.ask(f"fetch {a}")
            if got != truth_a:
                sys.exit(f"STALE: {peer.name} fetch {a}: {got!r}, database {truth_a!r}")
            truth = peers[0].ask(f"truth {a} {b}")
            got = peer.ask(f"fetch2 {a} {b}")
            if got != truth:
                sys.exit(f"STALE: {peer.name} fetch2 {a} {b}: {got!r}, database {truth!r}")
            self.reads += 2

    def write(self, peers):
        peer = self.rng.choice(peers)
        row = self.rng.randrange(1, ROWS + 1)
        old = self.rows.get(row)
        roll = self.rng.random()
        if old is None:
            cat = self.rng.randrange(CATEGORIES)
            answer = peer.ask(f"insert {row} {cat} n{row}")
            self.rows[row] = cat
        elif roll < 0.1:
            cat = old
            answer = peer.ask(f"delete {row}")
            del self.rows[row]
        elif roll < 0.7:
            cat = (old + self.rng.randrange(1, CATEGORIES)) % CATEGORIES
            answer = peer.ask(f"update {row} {cat} m{self.rng.randrange(1000)}")
            self.rows[row] = cat
        else:
            cat = old
            answer = peer.ask(f"update {row} {cat} e{self.rng.randrange(1000)}")
        if answer != "ok":
            sys.exit(f"{peer.name}: write of row {row} failed: {answer}")
        touched = {cat, old if old is not None else cat}
        for a in touched:
            self.verify(peers, a, self.rng.randrange(CATEGORIES))

    def everything(self, peers):
        for a in range(CATEGORIES):
            self.verify(peers, a, (a + 1) % CATEGORIES)


def main():
    old_binary, new_binary = sys.argv[1], sys.argv[2]
    ops = int(sys.argv[3]) if len(sys.argv) > 3 else 600
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    rng = random.Random(seed)
    port = free_port()
    memcached = subprocess.Popen(["/usr/bin/memcached", "-u", "root", "-l", "127.0.0.1", "-U", "0",
                                  "-t", "2", "-p", str(port)])
    try:
        time.sleep(0.5)
        with tempfile.TemporaryDirectory() as scratch:
            sqlite = os.path.join(scratch, "upgrade.db")
            addr = f"127.0.0.1:{port}"
            check = Check(rng)
            old = Peer("previous release", old_binary, sqlite, addr)
            for row in range(1, ROWS + 1):
                cat = rng.randrange(CATEGORIES)
                if old.ask(f"insert {row} {cat} n{row}") != "ok":
                    sys.exit("seeding failed")
                check.rows[row] = cat
            check.everything([old])
            print(f"previous release alone: nodes by header {node_formats(port)}")
            old_again = Peer("previous release, second process", old_binary, sqlite, addr)
            new = Peer("this release", new_binary, sqlite, addr)
            both = [old, old_again, new]
            check.everything(both)
            for _ in range(ops):
                check.write(both)
            check.everything(both)
            print(f"both releases, {ops} writes: nodes by header {node_formats(port)}")
            old.stop()
            old_again.stop()
            new_again = Peer("this release, second process", new_binary, sqlite, addr)
            alone = [new, new_again]
            for _ in range(ops // 2):
                check.write(alone)
            check.everything(alone)
            print(f"this release alone, {ops // 2} writes: nodes by header {node_formats(port)}")
            print(f"new release: {new.ask('stats')}")
            new.stop()
            new_again.stop()
            print(f"ok: {check.reads} reads, each equal to the database at that moment")
    finally:
        memcached.kill()
        memcached.wait()


if __name__ == "__main__":
    main()
