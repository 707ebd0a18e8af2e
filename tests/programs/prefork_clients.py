"""A pre-fork server whose workers are also clients (a proxy's shape): the parent listens, then
forks workers that each hold many connections to one upstream at once.

Usage: prefork_clients.py LISTEN_ADDRESS LISTEN_PORT UPSTREAM_ADDRESS UPSTREAM_PORT WORKERS
       CONNECTIONS

Each worker opens CONNECTIONS connections to the upstream and keeps them all open, sends
"PID INDEX\\n" on each and reads the same line back. It prints one line, `worker PID ok N
PORTS` (N lines came back intact; PORTS: the local ports, comma-separated) or `worker PID
failed: WHY`, and exits. The parent exits when every worker has, with status 1 if one failed.
"""

import os
import socket
import sys


def worker(upstream, connections):
    me = os.getpid()
    conns = []
    try:
        for i in range(connections):
            c = socket.create_connection(upstream, timeout=10)
            conns.append(c)
        for i, c in enumerate(conns):
            c.sendall(f"{me} {i}\n".encode())
        for i, c in enumerate(conns):
            want = f"{me} {i}\n".encode()
            got = b""
            while len(got) < len(want):
                chunk = c.recv(len(want) - len(got))
                if not chunk:
                    raise OSError(f"connection {i} ended after {got!r}")
                got += chunk
            if got != want:
                raise OSError(f"connection {i}: {got!r}, not {want!r}")
        ports = ",".join(str(c.getsockname()[1]) for c in conns)
        print(f"worker {me} ok {len(conns)} {ports}", flush=True)
        return 0
    except OSError as e:
        print(f"worker {me} failed: {e} (after {len(conns)} connections)", flush=True)
        return 1


def main():
    listen = (sys.argv[1], int(sys.argv[2]))
    upstream = (sys.argv[3], int(sys.argv[4]))
    workers, connections = int(sys.argv[5]), int(sys.argv[6])
    listener = socket.create_server(listen)
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os._exit(worker(upstream, connections))
        children.append(pid)
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed |= status != 0
    listener.close()
    sys.exit(1 if failed else 0)


main()
